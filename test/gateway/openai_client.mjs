// The official OpenAI JavaScript client (npm "openai", pinned in
// test/js/package-lock.json) doing ordinary work against one address's
// /v1 (an Ollama node, or the gateway in front of such nodes). Prints one
// JSON object of what it got; any exception fails the run.
//   node openai_client.mjs HOST
import OpenAI from 'openai';

// HOST may carry its scheme (https://...); AG_TOKEN, when set, is the API key (a Bearer token)
const base = process.argv[2].includes('://') ? process.argv[2] : 'http://' + process.argv[2];
const client = new OpenAI({ baseURL: base + '/v1', apiKey: process.env.AG_TOKEN || 'unused', maxRetries: 0 });
const out = {};
const messages = [{ role: 'user', content: 'why is the sky blue?' }];

// whole
const c = await client.chat.completions.create({ model: 'llama3.2', messages, max_tokens: 8 });
out.whole = { role: c.choices[0].message.role, content: c.choices[0].message.content,
              finish: c.choices[0].finish_reason, completion_tokens: c.usage.completion_tokens };

// a stream read chunk by chunk, as most code does (choices[0] on every chunk)
let text = '', chunks = 0;
const s = await client.chat.completions.create({ model: 'llama3.2', messages, max_tokens: 8, stream: true });
const ids = new Set();
for await (const chunk of s) {
  chunks++;
  ids.add(chunk.id);
  text += chunk.choices[0].delta.content ?? '';
}
out.stream = { text, chunks, one_id: ids.size === 1 };

// the stream helper, which needs the role on the first delta
const st = client.chat.completions.stream({ model: 'llama3.2', messages, max_tokens: 8 });
const fin = await st.finalChatCompletion();
out.helper = { role: fin.choices[0].message.role, content: fin.choices[0].message.content };

// tools through the stream helper
const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object',
  properties: { city: { type: 'string' } }, required: ['city'] } } }];
const tst = client.chat.completions.stream({ model: 'llama3.2', messages: [{ role: 'user', content: 'weather in Oslo' }], tools });
const tfin = await tst.finalChatCompletion();
const call = tfin.choices[0].message.tool_calls?.[0];
out.tools = call ? { name: call.function.name, arguments: JSON.parse(call.function.arguments) } : 'none';

// embeddings: the client asks for base64 and decodes it
const e = await client.embeddings.create({ model: 'nomic-embed-text', input: ['first text', 'second text'] });
out.embed = { n: e.data.length, dim: e.data[0].embedding.length,
              sum: e.data[0].embedding.reduce((a, b) => a + b, 0).toFixed(5) };

// models
const list = await client.models.list();
out.models = list.data.map(m => m.id).sort();
const one = await client.models.retrieve('llama3.2');
out.model = one.id;

// an error as the client reports it
try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
  out.missing = 'no error';
} catch (err) {
  out.missing = { status: err.status, type: err.error?.type ?? err.type ?? null };
}
console.log(JSON.stringify(out, null, 1));
