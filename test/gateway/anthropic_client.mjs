// The official Anthropic client (npm "@anthropic-ai/sdk", pinned by
// test/js/package-lock.json) doing ordinary work against one address's
// /v1/messages, as Claude Code and other Anthropic-SDK programs do against a
// local Ollama: a whole message, a streamed one, a tool call and its result
// answered, thinking, a token count, a missing model. Prints what it got as
// JSON (ids left out: they differ from node to node).
//   node anthropic_client.mjs HOST:PORT   (AG_TOKEN: the key, sent as x-api-key)
import Anthropic from "@anthropic-ai/sdk";

const base = process.argv[2].startsWith("http") ? process.argv[2] : `http://${process.argv[2]}`;
const client = new Anthropic({ baseURL: base, apiKey: process.env.AG_TOKEN || "ollama", maxRetries: 0 });
const out = {};

const whole = await client.messages.create({
  model: "llama3.2", max_tokens: 64, messages: [{ role: "user", content: "why is the sky blue?" }],
});
out.whole = { text: whole.content.map((b) => b.text).join(""), stop: whole.stop_reason, usage: whole.usage };

const stream = client.messages.stream({
  model: "llama3.2", max_tokens: 64, messages: [{ role: "user", content: "why is the sky blue?" }],
});
let streamed = "";
stream.on("text", (t) => { streamed += t; });
const final = await stream.finalMessage();
out.stream = { text: streamed, same: streamed === out.whole.text, stop: final.stop_reason,
  output_tokens: final.usage.output_tokens };

const tools = [{ name: "get_weather", description: "the weather in a city",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
const call = await client.messages.create({
  model: "llama3.2", max_tokens: 64, tools, messages: [{ role: "user", content: "what is the weather in Oslo" }],
});
const use = call.content.find((b) => b.type === "tool_use");
out.tool = { stop: call.stop_reason, name: use && use.name, input: use && use.input };
const answer = await client.messages.create({
  model: "llama3.2", max_tokens: 64, tools,
  messages: [
    { role: "user", content: "what is the weather in Oslo" },
    { role: "assistant", content: call.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny, 21 C" }] },
  ],
});
out.tool.answer = answer.content.map((b) => b.text || "").join("");

let thought = "", said = "";
const ts = client.messages.stream({
  model: "qwen3:4b", max_tokens: 16, thinking: { type: "enabled", budget_tokens: 1024 },
  messages: [{ role: "user", content: "think first" }],
});
ts.on("thinking", (t) => { thought += t; });
ts.on("text", (t) => { said += t; });
const tfinal = await ts.finalMessage();
out.thinking = { thought, said, blocks: tfinal.content.map((b) => b.type) };

const count = await client.messages.countTokens({ model: "llama3.2", messages: [{ role: "user", content: "hello there" }] });
out.count = count.input_tokens;

try {
  await client.messages.create({ model: "nope", max_tokens: 8, messages: [{ role: "user", content: "x" }] });
  out.missing = "no error";
} catch (e) {
  out.missing = { status: e.status, type: e.error && e.error.error && e.error.error.type };
}
console.log(JSON.stringify(out, null, 1));
