"""End-to-end checks with the official `openai` Python SDK against a running Reprise gateway.

Driven by the Rust test `sdk::the_official_python_sdk_works_unchanged`, which starts the mock
upstream and the gateway, then runs this script with GATEWAY_BASE_URL set. The streaming check
is a handshake: after the first chunk arrives this prints FIRST_CHUNK and waits for a line on
stdin; the mock holds its final event until then, so a gateway that buffered the stream would
never deliver the first chunk.
"""

import base64
import os
import sys

import openai


def say(line: str) -> None:
    print(line, flush=True)


def wait_for(word: str) -> None:
    """Waits until the driving test has scripted the mock for the next step."""
    line = sys.stdin.readline().strip()
    assert line == word, f"expected {word!r} from the test driver, got {line!r}"


client = openai.OpenAI(base_url=os.environ["GATEWAY_BASE_URL"], api_key="rp-client-key", max_retries=0)

# 1. A plain completion, and the gateway's headers on the raw response.
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
)
completion = raw.parse()
assert completion.choices[0].message.content == "Hello from the mock upstream.", completion
assert completion.choices[0].finish_reason == "stop"
assert completion.usage.total_tokens == 10, completion.usage
assert raw.headers["x-reprise-cache"] == "miss"
assert raw.headers["x-reprise-provider"] == "openai"
assert raw.headers["x-request-id"]
say("PLAIN_OK")
wait_for("READY")

# 2. A streamed completion, chunks arriving while the upstream is still sending.
stream = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello, in a stream"}],
    stream=True,
    stream_options={"include_usage": True},
)
chunks = iter(stream)
first = next(chunks)
assert first.object == "chat.completion.chunk"
say("FIRST_CHUNK")
wait_for("GO")
rest = list(chunks)
text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
assert text == "Hello from the mock upstream.", text
assert rest[-1].usage is not None and rest[-1].usage.total_tokens == 10, rest[-1]
say("STREAM_OK")

# 3. Embeddings.
embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 32, embeddings
# Each input is cached: a batch repeating one sends only the other upstream, and the cached one
# comes back as it was, in its place.
raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["c", "b"])
again = raw.parse()
assert raw.headers["x-reprise-cache"] == "miss" and raw.headers["x-reprise-cache-hits"] == "1"
assert [d.index for d in again.data] == [0, 1], again
assert again.data[1].embedding == embeddings.data[1].embedding
raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
assert raw.headers["x-reprise-cache"] == "hit", raw.headers
assert [d.embedding for d in raw.parse().data] == [d.embedding for d in embeddings.data]
say("EMBEDDINGS_OK")

# 4. The model list, and one model.
ids = [m.id for m in client.models.list()]
assert ids == ["mock-gpt", "mock-gpt-mini"], ids
model = client.models.retrieve("mock-gpt-mini")
assert (model.id, model.object, model.owned_by) == ("mock-gpt-mini", "model", "openai"), model
try:
    client.models.retrieve("no-such-model")
except openai.NotFoundError as err:
    assert err.body["code"] == "model_not_found", err.body
else:
    raise AssertionError("an unknown model was found")
say("MODELS_OK")

# 5. The Responses API: plain, a stream of named events, the SDK's stream helper, a follow-up
#    turn, and the stored response (retrieve, its input items, delete).
response = client.responses.create(model="gpt-4.1-mini", instructions="Be brief.", input="Say hello")
assert response.output_text == "Hello from the mock upstream.", response
assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 5), response.usage
events = list(client.responses.create(model="gpt-4.1-mini", input="Say hello", stream=True))
assert events[0].type == "response.created", events[0]
assert events[-1].type == "response.completed", events[-1]
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert deltas == "Hello from the mock upstream.", deltas
with client.responses.stream(model="gpt-4.1-mini", input="Say hello") as stream:
    final = stream.get_final_response()
assert final.output_text == "Hello from the mock upstream.", final
follow_up = client.responses.create(model="gpt-4.1-mini", input="And again", previous_response_id=response.id)
assert follow_up.output_text == "Hello from the mock upstream.", follow_up
assert client.responses.retrieve(response.id).id == response.id
items = client.responses.input_items.list(response.id)
assert [item.content[0].text for item in items.data] == ["Say hello"], items
client.responses.delete(response.id)
try:
    client.responses.retrieve(response.id)
except openai.NotFoundError:
    pass
else:
    raise AssertionError("a deleted response was found")
# A response kept nowhere upstream ("store": false) is cached: the repeat is a new response from
# the cache, in either form; the SDK's stream helper checks the replayed events as it builds it.
first = client.responses.create(model="gpt-4.1-mini", input="Cache me", store=False)
raw = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="Cache me", store=False)
cached = raw.parse()
assert raw.headers["x-reprise-cache"] == "hit", raw.headers
assert cached.id != first.id and cached.output_text == first.output_text, cached
with client.responses.stream(model="gpt-4.1-mini", input="Cache me", store=False) as stream:
    deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    final = stream.get_final_response()
assert deltas == first.output_text and final.output_text == first.output_text, final
say("RESPONSES_OK")

# 6. Legacy text completions, plain and streamed.
completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="def fib(n):", max_tokens=16)
assert completion.choices[0].text == "Hello from the mock upstream.", completion
assert completion.usage.total_tokens == 10, completion.usage
pieces = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="def fib(n):", stream=True)
assert "".join(c.choices[0].text for c in pieces if c.choices) == "Hello from the mock upstream."
say("COMPLETIONS_OK")

# 7. The API's other routes, forwarded as they came: moderations, an image, speech (audio
#    bytes) and a transcription (a multipart upload; the mock "transcribes" the file's bytes).
moderation = client.moderations.create(model="omni-moderation-latest", input=["I will hurt you", "Hello"])
assert [r.flagged for r in moderation.results] == [True, False], moderation
assert moderation.results[0].categories.violence is True, moderation
image = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk")
assert base64.b64decode(image.data[0].b64_json) == b"\x89PNG\r\n\x1a\na lighthouse at dusk", image
raw = client.audio.speech.with_raw_response.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello there")
assert raw.headers["content-type"] == "audio/mpeg", raw.headers
assert raw.headers["x-reprise-cache"] == "bypass" and raw.headers["x-reprise-provider"] == "openai"
audio = raw.parse().content
assert audio == b"ID3\x04\x00\x00\xff\xfbHello there", audio
upload = ("hello.wav", "bonjour, ça va ?".encode() + bytes(range(256)), "audio/wav")
transcript = client.audio.transcriptions.create(model="whisper-1", file=upload, language="fr")
assert transcript.text.startswith("bonjour, ça va ?"), transcript
text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"plain words"), response_format="text")
assert text.strip() == "plain words", text
say("MEDIA_OK")

# 8. A malformed request raises the SDK's BadRequestError with the OpenAI error body.
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[])
except openai.BadRequestError as err:
    assert err.status_code == 400
    assert err.body["type"] == "invalid_request_error", err.body
    assert err.body["param"] == "messages", err.body
else:
    raise AssertionError("an empty messages list was accepted")
say("BAD_REQUEST_OK")
wait_for("READY")

# 9. A stream cut by the upstream raises instead of ending quietly.
try:
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        pass
except openai.APIError as err:
    assert "incomplete" in str(err), err
else:
    raise AssertionError("a truncated stream ended like a complete one")
say("TRUNCATED_OK")
say("ALL_OK")
