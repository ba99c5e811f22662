// The official OpenAI client (npm "openai", pinned by test/js/package-lock.json)
// using the Responses API (/v1/responses, what Codex CLI speaks) against one
// address: a whole response, a streamed one (its events), a function call
// and its output answered, structured output by a JSON schema. Prints what it
// got as JSON (ids left out).
//   node responses_client.mjs HOST:PORT   (AG_TOKEN: a key)
import OpenAI from "openai";

const base = process.argv[2].startsWith("http") ? process.argv[2] : `http://${process.argv[2]}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.AG_TOKEN || "ollama", maxRetries: 0 });
const out = {};

const whole = await client.responses.create({ model: "llama3.2", instructions: "be brief", input: "why is the sky blue?" });
out.whole = { text: whole.output_text, status: whole.status, usage: whole.usage };

const events = [];
let streamed = "";
const stream = await client.responses.create({ model: "llama3.2", input: "why is the sky blue?", stream: true });
for await (const e of stream) {
  events.push(e.type);
  if (e.type === "response.output_text.delta") streamed += e.delta;
  if (e.type === "response.completed") out.completed_text = e.response.output.find((o) => o.type === "message").content[0].text;
}
out.stream = { same: streamed === out.whole.text, first: events[0], last: events[events.length - 1],
  kinds: [...new Set(events)] };

const tools = [{ type: "function", name: "get_weather", description: "the weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
const call = await client.responses.create({ model: "llama3.2", input: "what is the weather in Oslo", tools });
const fc = call.output.find((o) => o.type === "function_call");
out.tool = { name: fc && fc.name, arguments: fc && JSON.parse(fc.arguments) };
const answer = await client.responses.create({
  model: "llama3.2", tools,
  input: [{ role: "user", content: "what is the weather in Oslo" }, fc,
    { type: "function_call_output", call_id: fc.call_id, output: "sunny, 21 C" }],
});
out.tool.answer = answer.output_text;

const schema = { type: "object", properties: { city: { type: "string" }, temp: { type: "integer", minimum: -50, maximum: 50 } },
  required: ["city", "temp"], additionalProperties: false };
const structured = await client.responses.create({ model: "llama3.2", input: "the weather as JSON",
  text: { format: { type: "json_schema", name: "weather", schema, strict: true } } });
const obj = JSON.parse(structured.output_text);
out.structured = { keys: Object.keys(obj).sort(), temp_ok: Number.isInteger(obj.temp) && obj.temp >= -50 && obj.temp <= 50 };

const limited = await client.responses.create({ model: "llama3.2", input: "long", max_output_tokens: 3 });
out.limited = { status: limited.status, reason: limited.incomplete_details && limited.incomplete_details.reason,
  tokens: limited.usage.output_tokens };

try {
  await client.responses.create({ model: "nope", input: "x" });
  out.missing = "no error";
} catch (e) {
  out.missing = { status: e.status };
}
console.log(JSON.stringify(out, null, 1));
