"""The official `openai` Python SDK calling Anthropic- and Gemini-backed models through Reprise.

Driven by the Rust test `sdk::the_python_sdk_reaches_anthropic_and_gemini`, which scripts one
mock upstream per provider (speaking that provider's wire format) in the order below, then runs
this script with GATEWAY_BASE_URL set. Each model gets: a plain completion, a stream, a tool call
and a streamed tool call, through chat completions and then through the Responses API; then
Gemini embeddings, base64 and floats.
"""

import json
import os

import openai

REPLY = "Hello from the mock upstream."
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}}]

client = openai.OpenAI(base_url=os.environ["GATEWAY_BASE_URL"], api_key="rp-client-key", max_retries=0)

for model, provider in [("claude-sonnet-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")]:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]

    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    assert raw.headers["x-reprise-provider"] == provider, raw.headers
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY, completion
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 5, completion.usage

    stream = client.chat.completions.create(
        model=model, messages=messages + [{"role": "user", "content": "again, streamed"}],
        stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
    assert text == REPLY, text
    assert usage is not None and usage.completion_tokens == 5, usage

    ask = [{"role": "user", "content": "Weather in Paris?"}]
    called = client.chat.completions.create(model=model, messages=ask, tools=TOOLS)
    call = called.choices[0].message.tool_calls[0]
    assert called.choices[0].finish_reason == "tool_calls", called
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    stream = client.chat.completions.create(
        model=model, messages=ask + [{"role": "user", "content": "streamed"}], tools=TOOLS, stream=True)
    name, arguments, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                name += delta.function.name or ""
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather", name
    assert json.loads(arguments) == {"city": "Paris"}, arguments
    assert finish == "tool_calls", finish
    print(f"{provider.upper()}_OK", flush=True)

    # The same four through the Responses API, translated both ways; the SDK's stream helper
    # checks the events' order as it builds the response.
    raw = client.responses.with_raw_response.create(model=model, instructions="Be brief.", input="Say hello")
    assert raw.headers["x-reprise-provider"] == provider, raw.headers
    response = raw.parse()
    assert response.output_text == REPLY, response
    assert response.status == "completed" and response.usage.output_tokens == 5, response

    with client.responses.stream(model=model, input="Say hello, streamed") as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == REPLY and final.output_text == REPLY, (deltas, final)

    weather = [{"type": "function", "name": "get_weather", "description": "Weather",
                "parameters": TOOLS[0]["function"]["parameters"]}]
    called = client.responses.create(model=model, input="Weather in Paris?", tools=weather)
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather", called
    assert json.loads(call.arguments) == {"city": "Paris"}, call

    with client.responses.stream(model=model, input="Weather in Paris?", tools=weather) as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert json.loads(arguments) == {"city": "Paris"}, arguments
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}, final
    print(f"{provider.upper()}_RESPONSES_OK", flush=True)

# Embeddings from Gemini: the SDK asks for base64 by default (translated from Gemini's floats to
# little-endian 32-bit floats) and decodes it; asked for floats, it gets Gemini's own.
packed = client.embeddings.create(model="gemini-embedding-001", input=["a cat", "a dog"], dimensions=8)
floats = client.embeddings.create(model="gemini-embedding-001", input=["a cat", "a dog"], dimensions=8,
                                  encoding_format="float")
assert [d.index for d in packed.data] == [0, 1], packed
for a, b in zip(packed.data, floats.data):
    assert len(a.embedding) == 8 and len(b.embedding) == 8, (a, b)
    assert all(abs(x - y) < 1e-6 for x, y in zip(a.embedding, b.embedding)), (a, b)
assert packed.data[0].embedding != packed.data[1].embedding
print("GEMINI_EMBEDDINGS_OK", flush=True)
