// End-to-end checks with the official `openai` Node SDK against a running Reprise gateway.
//
// Driven by the Rust test `sdk::the_official_node_sdk_works_unchanged`, which starts the mock
// upstream and the gateway, then runs this script with GATEWAY_BASE_URL set. The same handshake
// as the Python script's: after the first chunk of a stream arrives this prints FIRST_CHUNK and
// waits for a line on stdin; the mock holds its final event until then, so a gateway that
// buffered the stream would never deliver the first chunk.

import assert from "node:assert/strict";
import readline from "node:readline";

import OpenAI, { toFile } from "openai";

const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (line) => process.stdout.write(`${line}\n`);
// Waits until the driving test has scripted the mock for the next step.
async function waitFor(word) {
  const { value } = await input.next();
  assert.equal(value?.trim(), word, "the test driver's answer");
}

const client = new OpenAI({
  baseURL: process.env.GATEWAY_BASE_URL,
  apiKey: "rp-client-key",
  maxRetries: 0,
});
const ask = (content) => ({ model: "gpt-4o-mini", messages: [{ role: "user", content }] });

// 1. A plain completion, and the gateway's headers on the raw response.
const { data: completion, response } = await client.chat.completions
  .create(ask("Say hello"))
  .withResponse();
assert.equal(completion.choices[0].message.content, "Hello from the mock upstream.");
assert.equal(completion.choices[0].finish_reason, "stop");
assert.equal(completion.usage.total_tokens, 10);
assert.equal(response.headers.get("x-reprise-cache"), "miss");
assert.equal(response.headers.get("x-reprise-provider"), "openai");
assert.ok(response.headers.get("x-request-id"));
say("PLAIN_OK");
await waitFor("READY");

// 2. A streamed completion, chunks arriving while the upstream is still sending.
const stream = await client.chat.completions.create({
  ...ask("Say hello, in a stream"),
  stream: true,
  stream_options: { include_usage: true },
});
const chunks = stream[Symbol.asyncIterator]();
const first = await chunks.next();
assert.equal(first.value.object, "chat.completion.chunk");
say("FIRST_CHUNK");
await waitFor("GO");
const all = [first.value];
for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
  all.push(next.value);
}
const text = all.map((c) => c.choices[0]?.delta?.content ?? "").join("");
assert.equal(text, "Hello from the mock upstream.");
assert.equal(all.at(-1).usage?.total_tokens, 10);
say("STREAM_OK");

// 3. The same question again is a cache hit, as JSON and as a stream, with the cache's headers.
const { data: again, response: hit } = await client.chat.completions
  .create(ask("Say hello"))
  .withResponse();
assert.equal(hit.headers.get("x-reprise-cache"), "hit");
assert.equal(hit.headers.get("x-reprise-cache-kind"), "exact");
assert.equal(again.choices[0].message.content, "Hello from the mock upstream.");
assert.notEqual(again.id, completion.id, "a hit has a fresh id");
const replayed = [];
for await (const chunk of await client.chat.completions.create({ ...ask("Say hello"), stream: true })) {
  replayed.push(chunk);
}
assert.ok(replayed.length > 2, `several chunks: ${replayed.length}`);
assert.equal(replayed.map((c) => c.choices[0]?.delta?.content ?? "").join(""), "Hello from the mock upstream.");
assert.equal(replayed.at(-1).choices[0].finish_reason, "stop");
say("CACHE_OK");

// 4. Embeddings.
const embeddings = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
assert.equal(embeddings.data.length, 2);
assert.equal(embeddings.data[0].embedding.length, 32);
// This SDK asks for base64 and decodes it: the cached inputs decode to the same vectors.
const { data: repeated, response: cached } = await client.embeddings
  .create({ model: "text-embedding-3-small", input: ["a", "b"] })
  .withResponse();
assert.equal(cached.headers.get("x-reprise-cache"), "hit");
assert.deepEqual(repeated.data.map((d) => d.embedding), embeddings.data.map((d) => d.embedding));
say("EMBEDDINGS_OK");

// 5. The model list, and one model.
const ids = [];
for await (const model of client.models.list()) {
  ids.push(model.id);
}
assert.deepEqual(ids, ["mock-gpt", "mock-gpt-mini"]);
const model = await client.models.retrieve("mock-gpt-mini");
assert.deepEqual([model.id, model.object, model.owned_by], ["mock-gpt-mini", "model", "openai"]);
await assert.rejects(client.models.retrieve("no-such-model"), (err) => {
  assert.ok(err instanceof OpenAI.NotFoundError, String(err));
  assert.equal(err.code, "model_not_found");
  return true;
});
say("MODELS_OK");

// 6. The Responses API: plain, a stream of named events, and the SDK's stream helper.
const answer = await client.responses.create({ model: "gpt-4.1-mini", instructions: "Be brief.", input: "Say hello" });
assert.equal(answer.output_text, "Hello from the mock upstream.");
assert.deepEqual([answer.usage.input_tokens, answer.usage.output_tokens], [5, 5]);
const events = [];
for await (const event of await client.responses.create({ model: "gpt-4.1-mini", input: "Say hello", stream: true })) {
  events.push(event);
}
assert.equal(events[0].type, "response.created");
assert.equal(events.at(-1).type, "response.completed");
const deltas = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join("");
assert.equal(deltas, "Hello from the mock upstream.");
const final = await client.responses.stream({ model: "gpt-4.1-mini", input: "Say hello" }).finalResponse();
// The helper builds its final response from the events (it does not add `output_text`).
assert.equal(final.status, "completed");
assert.equal(final.output[0].content[0].text, "Hello from the mock upstream.");
// Kept nowhere upstream ("store": false): the repeat comes from the cache, streamed through
// the SDK's helper, which checks the replayed events as it builds the response.
const unstored = { model: "gpt-4.1-mini", input: "Cache me", store: false };
const original = await client.responses.create(unstored);
const { response: hitResponse } = await client.responses.create(unstored).withResponse();
assert.equal(hitResponse.headers.get("x-reprise-cache"), "hit");
const fromCache = await client.responses.stream(unstored).finalResponse();
assert.notEqual(fromCache.id, original.id);
assert.equal(fromCache.output[0].content[0].text, original.output_text);
say("RESPONSES_OK");

// 7. Legacy text completions, plain and streamed.
const legacy = await client.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "def fib(n):", max_tokens: 16 });
assert.equal(legacy.choices[0].text, "Hello from the mock upstream.");
assert.equal(legacy.usage.total_tokens, 10);
let pieces = "";
for await (const c of await client.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "def fib(n):", stream: true })) {
  pieces += c.choices[0]?.text ?? "";
}
assert.equal(pieces, "Hello from the mock upstream.");
say("COMPLETIONS_OK");

// 8. The API's other routes, forwarded as they came: moderations, an image, speech (audio bytes)
//    and a transcription (a multipart upload; the mock "transcribes" the file's bytes).
const moderation = await client.moderations.create({ input: ["I will hurt you", "Hello"] });
assert.deepEqual(moderation.results.map((r) => r.flagged), [true, false]);
const image = await client.images.generate({ model: "gpt-image-1", prompt: "a lighthouse at dusk" });
assert.equal(Buffer.from(image.data[0].b64_json, "base64").subarray(8).toString(), "a lighthouse at dusk");
const speech = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "Hello there" });
assert.equal(speech.headers.get("content-type"), "audio/mpeg");
assert.equal(speech.headers.get("x-reprise-cache"), "bypass");
const audio = Buffer.from(await speech.arrayBuffer());
assert.deepEqual(audio, Buffer.concat([Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0xff, 0xfb]), Buffer.from("Hello there")]));
const transcript = await client.audio.transcriptions.create({
  model: "whisper-1",
  file: await toFile(Buffer.from("bonjour, ça va ?"), "hello.wav"),
});
assert.equal(transcript.text, "bonjour, ça va ?");
say("MEDIA_OK");

// 9. A malformed request throws the SDK's BadRequestError with the OpenAI error body.
await assert.rejects(client.chat.completions.create({ model: "gpt-4o-mini", messages: [] }), (err) => {
  assert.ok(err instanceof OpenAI.BadRequestError, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.type, "invalid_request_error");
  assert.equal(err.param, "messages");
  return true;
});
say("BAD_REQUEST_OK");
await waitFor("READY");

// 10. A stream cut by the upstream throws instead of ending quietly.
await assert.rejects(
  (async () => {
    for await (const _ of await client.chat.completions.create({ ...ask("x"), stream: true })) {
      // drained
    }
  })(),
  (err) => {
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.match(String(err.message), /incomplete/);
    return true;
  },
);
say("TRUNCATED_OK");
say("ALL_OK");
process.exit(0);
