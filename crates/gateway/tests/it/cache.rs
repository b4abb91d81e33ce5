//! The exact-tier cache through HTTP: hits, scope isolation, the never-store rules, streams both
//! ways, stampede protection, request directives, TTL, and persistence across a restart.

use std::time::Duration;

use reprise_test_support::{MockUpstream, Step};
use serde_json::{Value, json};

use crate::support::{
    Gateway, PATIENCE, Process, chat_body, client, content_of_stream, parse_sse, sse_events,
    stream_body,
};

async fn send(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().post(gw.url("/v1/chat/completions")).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn cache_header(r: &reqwest::Response) -> String {
    r.headers()["x-reprise-cache"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_equivalent_request_is_an_exact_hit() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let mut body = chat_body("What is the capital of France?");
    body["temperature"] = json!(0);
    let first = gw.chat(&body).await;
    assert_eq!(cache_header(&first), "miss");
    let first: Value = first.json().await.unwrap();

    // Same question, keys reordered, defaults spelled out, request-only fields added.
    let same = json!({
        "messages": [{"content": [{"type": "text", "text": "What is the capital of France?"}], "role": "user"}],
        "model": "gpt-4o-mini", "temperature": 0.0, "n": 1, "user": "someone", "top_p": 1
    });
    let hit = send(&gw, &same, &[]).await;
    assert_eq!(hit.status(), 200);
    let h = hit.headers().clone();
    assert_eq!(h["x-reprise-cache"], "hit");
    assert_eq!(h["x-reprise-cache-kind"], "exact");
    assert_eq!(h["x-reprise-provider"], "openai");
    assert!(h["age"].to_str().unwrap().parse::<u64>().unwrap() < 60);
    let hit: Value = hit.json().await.unwrap();
    assert_ne!(hit["id"], first["id"], "a fresh id");
    assert_eq!(hit["choices"], first["choices"]);
    assert_eq!(
        hit["usage"], first["usage"],
        "the cached answer's token counts"
    );
    assert_eq!(hit["system_fingerprint"], first["system_fingerprint"]);
    assert_eq!(mock.requests().len(), 1, "the hit made no upstream call");
}

#[tokio::test]
async fn a_paraphrase_is_a_semantic_hit() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    assert_eq!(
        cache_header(
            &gw.chat(&chat_body("How do I reverse a list in Python?"))
                .await
        ),
        "miss"
    );
    let r = gw
        .chat(&chat_body("How can I reverse a list in Python?"))
        .await;
    let h = r.headers().clone();
    assert_eq!(h["x-reprise-cache"], "hit");
    assert_eq!(h["x-reprise-cache-kind"], "semantic");
    let similarity: f32 = h["x-reprise-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.8..=1.0).contains(&similarity), "{similarity}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(mock.requests().len(), 1);
}

/// What is said around a question (a greeting, thanks, an appeal for help) is neither compared
/// nor embedded, and another spelling of a name is the name: the same question either way is
/// the same question, both ways.
#[tokio::test]
async fn a_greeting_or_another_spelling_of_a_name_does_not_change_a_question() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let pairs = [
        (
            "Hi there! How do I reverse a list in Python? Thanks in advance.",
            "How do I reverse a list in Python?",
        ),
        (
            "What is the capital of France?",
            "Hello! What is the capital of France? Any help is appreciated. Thanks!",
        ),
        // 0.76 embedded as typed.
        (
            "How do I read a file in JavaScript?",
            "how do i read a file in JS?",
        ),
    ];
    for (stored, asked) in pairs {
        assert_eq!(cache_header(&gw.chat(&chat_body(stored)).await), "miss");
        let r = gw.chat(&chat_body(asked)).await;
        assert_eq!(r.headers()["x-reprise-cache"], "hit", "{asked}");
        assert_eq!(r.headers()["x-reprise-cache-kind"], "semantic");
        let similarity: f32 = r.headers()["x-reprise-cache-similarity"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(similarity > 0.99, "{asked}: {similarity}");
    }
    // Thanks inside the question is part of it.
    let r = gw
        .chat(&chat_body("How do I say thank you in French?"))
        .await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn the_guard_vetoes_near_misses_that_change_the_answer() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let pairs = [
        ("What is 2+3?", "What is 2+4?"),
        (
            "Is it safe to drive before 3pm?",
            "Is it safe to drive after 3pm?",
        ),
        ("Is Jacob loyal to Justin?", "Is Justin loyal to Jacob?"),
        (
            "What should an author worry about?",
            "What should an author not worry about?",
        ),
        (
            "Can I feed my dog chocolate?",
            "Can I feed my cat chocolate?",
        ),
        ("What does os.path.join do?", "What does os.path.split do?"),
        // The same words, so the embedding gives 1.0: only the direction tells them apart.
        (
            "How do I convert Fahrenheit to Celsius?",
            "How do I convert Celsius to Fahrenheit?",
        ),
        ("What is 5 minus 3?", "What is 3 minus 5?"),
        // Two things exchanged in one frame, or the things counted trading places (both 1.0,
        // and served before the twenty-first session).
        ("Is a square a rectangle?", "Is a rectangle a square?"),
        ("How many miles is 5 km?", "How many km is 5 miles?"),
        // One short phrase in place of another in the same frame (0.84: served before the
        // twenty-second session, as four changed words were read as a rewording).
        (
            "How do I validate an email address in JavaScript?",
            "How do I validate a phone number in JavaScript?",
        ),
        // An error message is as literal as a quoted string (0.81).
        (
            "Fix this error: TypeError: undefined is not a function",
            "Fix this error: TypeError: null is not an object",
        ),
        // Another action on the same thing, reworded (0.87: served before the same session).
        (
            "How do I kill a process on port 8080?",
            "How do I find which process is using port 8080?",
        ),
        // Symbols the embedding barely sees (similarities 0.987 and 0.979).
        (
            "What does a == b do in Python?",
            "What does a != b do in Python?",
        ),
        ("What does x += 1 do?", "What does x -= 1 do?"),
        // Names written with a sigil (0.99: served before the twenty-third session, both read
        // as "C" twice).
        (
            "What is the difference between C++ and C#?",
            "What is the difference between C and C++?",
        ),
        // Two things exchanged, the function words around them changed (0.99).
        (
            "What happens if petrol is used in a diesel engine?",
            "What happens when diesel is used in petrol engine?",
        ),
        // The speaker bitten, then biting (0.95: served before the twenty-third session).
        (
            "What should I do if my dog bites me?",
            "What should I do if I bite my dog?",
        ),
        // Whether to do something, not how (0.97: served before the same session).
        (
            "Should I jailbreak my iPhone 6?",
            "How do I jailbreak my iPhone 6?",
        ),
        // The opposite operation in other words (0.82: served before the guard read opposites).
        (
            "How do I encrypt a file with openssl on Linux?",
            "What is the way to decrypt a file using openssl in Linux?",
        ),
        // The guard reads English only; these two were served one another's answer before it
        // left other languages to the exact tier.
        (
            "¿Cuántos días tiene una semana?",
            "¿Cuántos días tiene un mes?",
        ),
        ("प्रधानमंत्री कौन है?", "राष्ट्रपति कौन है?"),
    ];
    for (first, second) in pairs {
        assert_eq!(
            cache_header(&gw.chat(&chat_body(first)).await),
            "miss",
            "{first}"
        );
        assert_eq!(
            cache_header(&gw.chat(&chat_body(second)).await),
            "miss",
            "{second} was served {first}'s answer"
        );
    }
    assert_eq!(mock.requests().len(), 2 * pairs.len());
}

#[tokio::test]
async fn a_question_two_cached_questions_match_equally_is_a_miss() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let asked = chat_body("How should I boil an egg?");
    assert_eq!(
        cache_header(&send(&gw, &chat_body("How do I boil an egg?"), &[]).await),
        "miss"
    );
    // With one close question cached, a paraphrase is served from it.
    assert_eq!(cache_header(&send(&gw, &asked, &[]).await), "hit");
    // A second one about as close (stored through no-cache, which skips the lookup): now the
    // two are equally plausible answers (similarities 0.963 and 0.961 with the default model,
    // within the 0.015 margin), and neither is served.
    let other = chat_body("How can I boil an egg?");
    assert_eq!(
        cache_header(&send(&gw, &other, &[("cache-control", "no-cache")]).await),
        "miss"
    );
    assert_eq!(cache_header(&send(&gw, &other, &[]).await), "hit");
    let r = send(&gw, &asked, &[]).await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(mock.requests().len(), 3);
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "reprise_cache_lookups_total{result=\"ambiguous\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reworded_question_is_served_when_close_and_a_swapped_word_never() {
    let cached = chat_body(
        "When I set the format of a DatasetDict to jax, will all of its Datasets be formatted as jax?",
    );
    // Reworded around one changed content word ("set" / "converted"), similarity 0.96 with the
    // default model: at least 0.10 above the default threshold, so served...
    let reworded = chat_body(
        "If I format a DatasetDict to jax, will all the Datasets in it be converted to the jax format?",
    );
    // ...where the same template with one word swapped is another question however close.
    let swapped = chat_body(
        "When I set the format of a DatasetDict to torch, will all of its Datasets be formatted as torch?",
    );
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    assert_eq!(cache_header(&send(&gw, &cached, &[]).await), "miss");
    let r = send(&gw, &reworded, &[]).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(r.headers()["x-reprise-cache-kind"], "semantic");
    assert_eq!(cache_header(&send(&gw, &swapped, &[]).await), "miss");
    assert_eq!(mock.requests().len(), 2);

    // The same statement turned around, one word said another way ("saved" / "store", 0.97):
    // very close, its words moved, so served; a word swapped in its place with the rest moved
    // around it is not.
    let turned = [
        "Serialized datasets can be saved to cloud storage using Dataset.save_to_disk().",
        "Dataset.save_to_disk() can be used to store serialized datasets in cloud storage.",
    ];
    assert_eq!(cache_header(&gw.chat(&chat_body(turned[0])).await), "miss");
    assert_eq!(cache_header(&gw.chat(&chat_body(turned[1])).await), "hit");
    for sorted in [
        "In Python, how do I sort a list by name?",
        "How do I sort a list by date in Python?",
    ] {
        assert_eq!(cache_header(&gw.chat(&chat_body(sorted)).await), "miss");
    }
    assert_eq!(mock.requests().len(), 5);

    // "Close" is relative to the configured threshold: at 0.90 the same rewording is a miss.
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nsimilarity_threshold = 0.90\n", &mock).await;
    assert_eq!(cache_header(&send(&gw, &cached, &[]).await), "miss");
    assert_eq!(cache_header(&send(&gw, &reworded, &[]).await), "miss");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn paraphrases_in_another_scope_or_about_now_are_not_served() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let with_system = |system: &str, question: &str| {
        json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": question}]})
    };
    send(
        &gw,
        &with_system("Answer in French.", "How do I reverse a list in Python?"),
        &[],
    )
    .await;
    let r = send(
        &gw,
        &with_system("Answer in German.", "How can I reverse a list in Python?"),
        &[],
    )
    .await;
    assert_eq!(
        cache_header(&r),
        "miss",
        "another system prompt is another scope"
    );
    let r = send(
        &gw,
        &with_system("Answer in French.", "How can I reverse a list in Python?"),
        &[],
    )
    .await;
    assert_eq!(r.headers()["x-reprise-cache-kind"], "semantic");

    // Time-sensitive questions are served by the exact tier only.
    send(&gw, &chat_body("What is the weather in Paris today?"), &[]).await;
    let r = send(&gw, &chat_body("What's the weather in Paris today?"), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    let r = send(&gw, &chat_body("What is the weather in Paris today?"), &[]).await;
    assert_eq!(r.headers()["x-reprise-cache-kind"], "exact");

    // Something made up gets a fresh answer each time, unless the temperature is pinned;
    // then the very same request is an exact hit and a paraphrase is not served.
    for _ in 0..2 {
        let r = send(&gw, &chat_body("Tell me a joke about cats."), &[]).await;
        assert_eq!(cache_header(&r), "bypass");
        // Drawn at random: a password served to another caller would be a shared secret.
        let r = send(&gw, &chat_body("Generate a random password."), &[]).await;
        assert_eq!(cache_header(&r), "bypass");
    }
    let mut pinned = chat_body("Tell me a joke about cats.");
    pinned["temperature"] = json!(0);
    assert_eq!(cache_header(&send(&gw, &pinned, &[]).await), "miss");
    assert_eq!(cache_header(&send(&gw, &pinned, &[]).await), "hit");
    pinned["messages"][0]["content"] = json!("Tell me a joke about the cats.");
    assert_eq!(cache_header(&send(&gw, &pinned, &[]).await), "miss");
}

#[tokio::test]
async fn anything_that_changes_the_answer_misses() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let base = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."}
    ]});
    assert_eq!(cache_header(&send(&gw, &base, &[]).await), "miss");
    let mut variants = Vec::new();
    let mut v = base.clone();
    v["messages"][0]["content"] = json!("You are verbose.");
    variants.push(v);
    let mut v = base.clone();
    v["model"] = json!("gpt-4o");
    variants.push(v);
    let mut v = base.clone();
    v["max_tokens"] = json!(5);
    variants.push(v);
    let mut v = base.clone();
    v["messages"] = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Name a colour."}
    ]);
    variants.push(v);
    for v in &variants {
        assert_eq!(cache_header(&send(&gw, v, &[]).await), "miss", "{v}");
    }
    let mut warm = base.clone();
    warm["temperature"] = json!(0.9);
    assert_eq!(
        cache_header(&send(&gw, &warm, &[]).await),
        "bypass",
        "creative requests bypass"
    );
    assert_eq!(cache_header(&send(&gw, &warm, &[]).await), "bypass");
    assert_eq!(mock.requests().len(), 1 + variants.len() + 2);
    // And the original still hits.
    assert_eq!(cache_header(&send(&gw, &base, &[]).await), "hit");
}

#[tokio::test]
async fn tenants_in_other_namespaces_never_hit() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nnamespace_header = true\n", &mock).await;
    let body = chat_body("Shared question");
    let a = [("x-reprise-namespace", "team-a")];
    let b = [("x-reprise-namespace", "team-b")];
    assert_eq!(cache_header(&send(&gw, &body, &a).await), "miss");
    assert_eq!(cache_header(&send(&gw, &body, &b).await), "miss");
    assert_eq!(cache_header(&send(&gw, &body, &a).await), "hit");
    assert_eq!(
        cache_header(&send(&gw, &body, &[]).await),
        "miss",
        "no namespace is its own"
    );
    assert_eq!(mock.requests().len(), 3);

    // Without the operator's consent the header is ignored: one shared namespace.
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    assert_eq!(cache_header(&send(&gw, &body, &a).await), "miss");
    assert_eq!(cache_header(&send(&gw, &body, &b).await), "hit");
}

#[tokio::test]
async fn bad_answers_are_never_stored() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let completion = |message: Value, finish: &str| {
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    };
    let cases = [
        completion(
            json!({"role": "assistant", "content": "cut off mid"}),
            "length",
        ),
        completion(
            json!({"role": "assistant", "content": "filtered"}),
            "content_filter",
        ),
        completion(json!({"role": "assistant", "content": ""}), "stop"),
        completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
        ),
        completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
            "tool_calls",
        ),
    ];
    for (i, answer) in cases.iter().enumerate() {
        let body = chat_body(&format!("never store case {i}"));
        mock.respond_json(answer.clone());
        let r = send(&gw, &body, &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap()["choices"],
            answer["choices"],
            "relayed as it came"
        );
        // Asked again: not served from the cache (the mock answers normally this time).
        assert_eq!(
            cache_header(&send(&gw, &body, &[]).await),
            "miss",
            "case {i} was stored"
        );
    }
    // Errors are not stored either (every attempt fails, so the client gets the 500).
    mock.fail_times(3, 500);
    let body = chat_body("error case");
    assert_eq!(send(&gw, &body, &[]).await.status(), 500);
    assert_eq!(cache_header(&send(&gw, &body, &[]).await), "miss");
    // A truncated stream is not stored.
    mock.truncate_after_chunks(3);
    let body = stream_body("truncated case", false);
    let events = sse_events(send(&gw, &body, &[]).await).await;
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert_eq!(cache_header(&send(&gw, &body, &[]).await), "miss");
}

#[tokio::test]
async fn tool_calls_are_stored_when_tools_were_offered() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let mut body = chat_body("Weather in Paris, please");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    // With Azure's content filter results, at the top and in the choice.
    let answer = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}});
    mock.respond_json(answer.clone());
    send(&gw, &body, &[]).await;
    // Streamed back from the cache, the tool call reassembles exactly.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = send(&gw, &streamed, &[]).await;
    assert_eq!(cache_header(&r), "hit");
    let events = sse_events(r).await;
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut arguments = String::new();
    for c in &chunks {
        if let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() {
            arguments.push_str(
                calls[0]["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
    }
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    // No text in the answer: the opening delta says `null`, as an upstream's does, not `""`.
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], Value::Null);
    assert!(chunks.iter().all(|c| {
        c["choices"][0]["delta"]["content"]
            .as_str()
            .is_none_or(str::is_empty)
    }));
    // The filter results survive the replay: the prompt's once, the choice's with its end.
    let prompt_filters: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.get("prompt_filter_results"))
        .collect();
    assert_eq!(prompt_filters, [&answer["prompt_filter_results"]]);
    let last = chunks
        .iter()
        .rfind(|c| c["choices"][0]["finish_reason"] == "tool_calls")
        .unwrap();
    assert_eq!(
        last["choices"][0]["content_filter_results"],
        answer["choices"][0]["content_filter_results"]
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"finish_reason\":\"tool_calls\""))
    );
}

#[tokio::test]
async fn a_streamed_miss_is_a_json_hit_and_the_reverse() {
    let mock = MockUpstream::builder()
        .reply(
            "A reply long enough to be replayed in several chunks, like an upstream would send it.",
        )
        .start()
        .await;
    let gw = Gateway::start(&mock).await;

    let r = send(&gw, &stream_body("stream first", true), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    let streamed = content_of_stream(&sse_events(r).await);
    let r = send(&gw, &chat_body("stream first"), &[]).await;
    assert_eq!(cache_header(&r), "hit");
    let json: Value = r.json().await.unwrap();
    assert_eq!(json["choices"][0]["message"]["content"], streamed.as_str());
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        json["usage"]["completion_tokens"], 16,
        "usage from the stream's usage chunk"
    );

    let r = send(&gw, &chat_body("json first"), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    let r = send(&gw, &stream_body("json first", true), &[]).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = sse_events(r).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.len() > 5, "several chunks: {events:?}");
    assert_eq!(
        content_of_stream(&events),
        "A reply long enough to be replayed in several chunks, like an upstream would send it."
    );
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 21);
    assert_eq!(mock.requests().len(), 2);
}

/// What one request got: its cache header, the answer's content and its finish reason.
type Got = (String, String, String);

/// Sends `n` identical requests at once, JSON and streams alternately (JSON first).
fn identical_requests(gw: &Gateway, question: &str, n: usize) -> Vec<tokio::task::JoinHandle<Got>> {
    let http = client();
    (0..n)
        .map(|i| {
            let (http, url) = (http.clone(), gw.url("/v1/chat/completions"));
            let stream = i % 2 == 1;
            let body = if stream {
                stream_body(question, false)
            } else {
                chat_body(question)
            };
            tokio::spawn(async move {
                let r = http.post(url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let cache = cache_header(&r);
                let text = r.text().await.unwrap();
                let (content, finish) = if stream {
                    let events = parse_sse(&text);
                    let finish = events
                        .iter()
                        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                        .find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
                    (content_of_stream(&events), finish.unwrap_or_default())
                } else {
                    let c: Value = serde_json::from_str(&text).unwrap();
                    let choice = &c["choices"][0];
                    let content = choice["message"]["content"].as_str().unwrap().to_owned();
                    (
                        content,
                        choice["finish_reason"].as_str().unwrap().to_owned(),
                    )
                };
                (cache, content, finish)
            })
        })
        .collect()
}

/// One of the requests went upstream (a miss); the others got its answer (hits).
async fn one_miss_and_hits(calls: Vec<tokio::task::JoinHandle<Got>>, content: &str, finish: &str) {
    let mut caches = Vec::new();
    for call in calls {
        let (cache, got, finished) = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap();
        assert_eq!((got.as_str(), finished.as_str()), (content, finish));
        caches.push(cache);
    }
    let misses = caches.iter().filter(|c| *c == "miss").count();
    let hits = caches.iter().filter(|c| *c == "hit").count();
    assert_eq!((misses, hits), (1, caches.len() - 1), "{caches:?}");
}

/// The mock's answer.
const HELLO: &str = "Hello from the mock upstream.";

#[tokio::test]
async fn identical_concurrent_misses_share_one_upstream_call() {
    let mock = MockUpstream::start().await;
    mock.delay_first_byte(Duration::from_millis(300));
    let gw = Gateway::start(&mock).await;
    one_miss_and_hits(identical_requests(&gw, "stampede", 50), HELLO, "stop").await;
    assert_eq!(
        mock.requests().len(),
        1,
        "one upstream call for 50 identical requests"
    );
}

#[tokio::test]
async fn identical_concurrent_misses_share_an_upstream_failure() {
    let mock = MockUpstream::start().await;
    // The upstream takes its time, then refuses the request.
    mock.push(Step::After(
        Duration::from_millis(300),
        Box::new(Step::Fail(400)),
    ));
    let gw = Gateway::start(&mock).await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let url = gw.url("/v1/chat/completions");
        calls.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .json(&chat_body("shared failure"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let provider = r.headers()["x-reprise-provider"]
                .to_str()
                .unwrap()
                .to_owned();
            let body: Value = r.json().await.unwrap();
            (status, provider, body)
        }));
    }
    let mut bodies = Vec::new();
    for call in calls {
        let (status, provider, body) = tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap();
        assert_eq!(status, 400, "{body}");
        assert_eq!(provider, "openai");
        bodies.push(body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    // The upstream's own error, relayed to every caller.
    assert_eq!(bodies[0]["error"]["message"], "mock failure 400");
    assert_eq!(
        mock.requests().len(),
        1,
        "one upstream call for 20 identical requests"
    );
    // A failure is not cached: the next identical request goes upstream again.
    let r = send(&gw, &chat_body("shared failure"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn an_answer_the_cache_does_not_keep_still_answers_identical_concurrent_requests() {
    let mock = MockUpstream::start().await;
    // Cut by max_tokens: never stored, but the right answer for the identical requests asked
    // while it was on its way.
    let cut = json!({
        "id": "chatcmpl-cut", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A long answer cut"},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
    });
    // Long enough for every follower to join the leader's call (a request arriving after it
    // ended would rightly go upstream itself).
    mock.push(Step::After(
        Duration::from_millis(1500),
        Box::new(Step::Json(cut)),
    ));
    let gw = Gateway::start(&mock).await;
    // The first (a JSON request) leads; the others, JSON and streams, follow.
    let mut calls = identical_requests(&gw, "cut short", 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    calls.extend(identical_requests(&gw, "cut short", 19));
    one_miss_and_hits(calls, "A long answer cut", "length").await;
    assert_eq!(
        mock.requests().len(),
        1,
        "one upstream call for 20 requests"
    );
    // Not stored: the next identical request goes upstream.
    let r = send(&gw, &chat_body("cut short"), &[]).await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn when_the_leaders_client_goes_away_one_follower_takes_over_its_call() {
    let mock = MockUpstream::start().await;
    // The leader's call never answers; the next one answers after a while.
    mock.stall().delay_first_byte(Duration::from_millis(500));
    let gw = Gateway::start(&mock).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let url = gw.url("/v1/chat/completions");
    let leader = tokio::spawn(async move {
        impatient
            .post(url)
            .json(&chat_body("abandoned"))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = identical_requests(&gw, "abandoned", 10);
    let err = leader.await.unwrap().unwrap_err();
    assert!(err.is_timeout());
    assert!(
        mock.wait_cancelled(1, PATIENCE).await,
        "the leader's call outlived its client"
    );
    one_miss_and_hits(calls, HELLO, "stop").await;
    assert_eq!(
        mock.requests().len(),
        2,
        "the abandoned call and one more for 10 waiting requests"
    );
    // The follower's answer was stored as usual.
    let r = send(&gw, &chat_body("abandoned"), &[]).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn when_the_leaders_stream_is_cut_one_follower_takes_over_its_call() {
    let mock = MockUpstream::start().await;
    // The leader's stream is cut after its first events; the next call answers in full.
    mock.push(Step::After(
        Duration::from_millis(800),
        Box::new(Step::TruncateAfterChunks(2)),
    ));
    let gw = Gateway::with_config("[routing]\nmax_attempts = 1\n", &mock).await;
    let url = gw.url("/v1/chat/completions");
    let leader = tokio::spawn(async move {
        let r = client()
            .post(url)
            .json(&stream_body("cut stream", false))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = identical_requests(&gw, "cut stream", 10);
    let cut = tokio::time::timeout(PATIENCE, leader)
        .await
        .unwrap()
        .unwrap();
    assert!(cut.contains("upstream_stream_truncated"), "{cut}");
    one_miss_and_hits(calls, HELLO, "stop").await;
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn cache_control_directives_are_honoured() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    // no-store: neither served nor stored.
    let body = chat_body("directive no-store");
    assert_eq!(
        cache_header(&send(&gw, &body, &[("cache-control", "no-store")]).await),
        "miss"
    );
    assert_eq!(
        cache_header(&send(&gw, &body, &[]).await),
        "miss",
        "no-store stored nothing"
    );
    // no-cache: not served, but the fresh answer is stored.
    assert_eq!(
        cache_header(&send(&gw, &body, &[("cache-control", "no-cache")]).await),
        "miss"
    );
    assert_eq!(cache_header(&send(&gw, &body, &[]).await), "hit");
    // ...for the semantic tier too.
    let asked = chat_body("How do I reverse a list in Python?");
    let nocache = [("cache-control", "no-cache")];
    assert_eq!(cache_header(&send(&gw, &asked, &nocache).await), "miss");
    let paraphrase = chat_body("How can I reverse a list in Python?");
    let r = send(&gw, &paraphrase, &[]).await;
    assert_eq!(r.headers()["x-reprise-cache-kind"], "semantic");
    // max-age: only younger entries; 0 is never young enough.
    assert_eq!(
        cache_header(&send(&gw, &body, &[("cache-control", "max-age=0")]).await),
        "miss"
    );
    assert_eq!(
        cache_header(&send(&gw, &body, &[("cache-control", "max-age=3600")]).await),
        "hit"
    );
    // Malformed directives are a client error.
    let r = send(&gw, &body, &[("cache-control", "max-age=soon")]).await;
    assert_eq!(r.status(), 400);
    let r = send(&gw, &body, &[("x-reprise-cache-ttl", "forever")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn entries_expire_with_their_ttl() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let body = chat_body("short-lived");
    send(&gw, &body, &[("x-reprise-cache-ttl", "1")]).await;
    assert_eq!(cache_header(&send(&gw, &body, &[]).await), "hit");
    // Poll (bounded) until the second has passed; an expired entry is never served.
    let expired = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if cache_header(&send(&gw, &body, &[]).await) == "miss" {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, expired)
        .await
        .expect("never expired");
}

#[tokio::test]
async fn entries_survive_a_restart() {
    let mock = MockUpstream::start().await;
    let ask = |url: String, question: &'static str| async move {
        client()
            .post(url)
            .json(&chat_body(question))
            .send()
            .await
            .unwrap()
    };
    // Stored with a greeting and thanks, which the index rebuilt on start leaves out of the
    // embedding as the live index does (with them, the bare question scores 0.78, a miss).
    let stored = "Hi there! How do I reverse a list in Python? Thanks in advance.";
    let (mut first, url) = Process::serve(&mock, None).await;
    let r = ask(url, stored).await;
    assert_eq!(cache_header(&r), "miss");
    first.terminate().await;
    assert_eq!(first.finish().await.0, Some(0));

    let (mut second, url) = Process::serve(&mock, Some(first.into_data_dir())).await;
    let r = ask(url.clone(), stored).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(r.headers()["x-reprise-cache-kind"], "exact");
    assert_eq!(r.headers()["x-reprise-provider"], "openai");
    // The semantic index is rebuilt from the store after start-up; ready once it is.
    let readyz = url.replace("/v1/chat/completions", "/readyz");
    let ready = async {
        while client().get(&readyz).send().await.unwrap().status() != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("never ready");
    assert_eq!(second.logged("semantic tier loaded").await["entries"], 1);
    let r = ask(url, "How do I reverse a list in Python?").await;
    assert_eq!(r.headers()["x-reprise-cache-kind"], "semantic");
    let similarity = r.headers()["x-reprise-cache-similarity"].to_str().unwrap();
    assert!(similarity.parse::<f32>().unwrap() > 0.99, "{similarity}");
    assert_eq!(mock.requests().len(), 1);
    second.terminate().await;
    assert_eq!(second.finish().await.0, Some(0));
}

#[tokio::test]
async fn a_burst_of_misses_stopped_cleanly_is_stored_whole() {
    // Many misses at once go to the store in batches, off the requests' path; a clean stop
    // right after the last answer still writes every one of them.
    let mock = MockUpstream::start().await;
    let (mut first, url) = Process::serve(&mock, None).await;
    const ASKED: usize = 300;
    let mut burst = Vec::new();
    for worker in 0..16 {
        let url = url.clone();
        burst.push(tokio::spawn(async move {
            for i in (worker..ASKED).step_by(16) {
                let body = chat_body(&format!("stored burst question number {i}"));
                let r = client().post(&url).json(&body).send().await.unwrap();
                assert_eq!(cache_header(&r), "miss");
            }
        }));
    }
    for b in burst {
        b.await.unwrap();
    }
    first.terminate().await;
    assert_eq!(first.finish().await.0, Some(0));

    let (mut second, url) = Process::serve(&mock, Some(first.into_data_dir())).await;
    assert_eq!(second.logged("cache loaded").await["entries"], ASKED);
    let r = client()
        .post(&url)
        .json(&chat_body("stored burst question number 299"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-reprise-cache-kind"], "exact");
    assert_eq!(mock.requests().len(), ASKED);
    second.terminate().await;
    assert_eq!(second.finish().await.0, Some(0));
}

#[tokio::test]
async fn stats_and_purge_through_the_admin_api_and_the_cli() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nnamespace_header = true\n", &mock).await;
    let a = [("x-reprise-namespace", "team-a")];
    let b = [("x-reprise-namespace", "team-b")];
    let question = chat_body("How do I reverse a list in Python?");
    send(&gw, &question, &a).await;
    send(&gw, &question, &b).await;
    assert_eq!(cache_header(&send(&gw, &question, &a).await), "hit");
    let paraphrase = chat_body("How can I reverse a list in Python?");
    assert_eq!(
        send(&gw, &paraphrase, &a).await.headers()["x-reprise-cache-kind"],
        "semantic"
    );
    let mut warm = chat_body("Write a poem");
    warm["temperature"] = json!(1.2);
    assert_eq!(cache_header(&send(&gw, &warm, &a).await), "bypass");

    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["entries"], 2);
    assert_eq!(stats["exact_hits"], 1);
    assert_eq!(stats["semantic_hits"], 1);
    assert_eq!(stats["misses"], 2);
    assert_eq!(stats["bypasses"], 1);
    assert_eq!(
        stats["completion_tokens_saved"], 10,
        "5 tokens for each of two hits"
    );
    assert!(stats["bytes"].as_u64().unwrap() > 100);
    // Priced with the shipped table: gpt-4o-mini at $0.15 in, $0.60 out per million tokens.
    let (prompt, completion) = (
        stats["prompt_tokens_saved"].as_f64().unwrap(),
        stats["completion_tokens_saved"].as_f64().unwrap(),
    );
    assert!(prompt > 0.0);
    let usd = stats["usd_saved"].as_f64().unwrap();
    assert!(
        (usd - (prompt * 0.15 + completion * 0.60) / 1e6).abs() < 1e-9,
        "{usd}"
    );
    assert_eq!(stats["unpriced_hits"], 0);

    let r = client()
        .delete(gw.url("/admin/cache?namespace=team-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["purged"], 1);
    assert_eq!(
        cache_header(&send(&gw, &question, &a).await),
        "miss",
        "purged"
    );
    assert_eq!(
        cache_header(&send(&gw, &question, &b).await),
        "hit",
        "other namespace kept"
    );

    // The same through the CLI.
    let addr = gw.addr.to_string();
    let (code, out) = Process::spawn(&["cache", "stats", "--gateway", &addr], &[])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{out:?}");
    let printed: Value = serde_json::from_str(&out.join("\n")).unwrap();
    assert_eq!(printed["entries"], 2);
    let (code, out) = Process::spawn(
        &[
            "cache",
            "purge",
            "--model",
            "gpt-4o-mini",
            "--gateway",
            &addr,
        ],
        &[],
    )
    .finish()
    .await;
    assert_eq!(code, Some(0), "{out:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&out.join("\n")).unwrap()["purged"],
        2
    );
    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["entries"], 0);
}

#[tokio::test]
async fn kill_9_during_a_write_burst_loses_no_stored_entry() {
    let mock = MockUpstream::start().await;
    let (mut first, url) = Process::serve(&mock, None).await;
    let question = |i: usize| chat_body(&format!("burst question number {i}"));

    // A burst of distinct misses from 8 concurrent clients, killed while still going.
    let mut burst = Vec::new();
    for worker in 0..8 {
        let url = url.clone();
        burst.push(tokio::spawn(async move {
            for i in (worker..400).step_by(8) {
                let sent = client()
                    .post(&url)
                    .header("x-request-id", format!("burst-{i}"))
                    .json(&question(i))
                    .send()
                    .await;
                if sent.is_err() {
                    return;
                }
            }
        }));
    }
    // Kill once some entries are confirmed stored.
    let stored = |lines: &[String]| -> Vec<usize> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "cache entry stored")
            .filter_map(|v| {
                v["request_id"]
                    .as_str()?
                    .strip_prefix("burst-")?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let enough = async {
        while stored(&first.output()).len() < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(PATIENCE, enough)
        .await
        .expect("no entries stored");
    let pid = first.child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let (code, out) = first.finish().await;
    assert_eq!(code, None, "killed by a signal");
    for b in burst {
        b.await.unwrap();
    }
    let confirmed = stored(&out);
    assert!(confirmed.len() >= 20);

    // A clean start on the same store, with every confirmed entry there.
    let (mut second, url) = Process::serve(&mock, Some(first.into_data_dir())).await;
    let upstream_calls = mock.requests().len();
    for i in &confirmed {
        let r = client()
            .post(&url)
            .json(&question(*i))
            .send()
            .await
            .unwrap();
        assert_eq!(
            cache_header(&r),
            "hit",
            "entry {i} was confirmed stored but is gone"
        );
    }
    assert_eq!(
        mock.requests().len(),
        upstream_calls,
        "all answered from the cache"
    );
    second.terminate().await;
    assert_eq!(second.finish().await.0, Some(0));
}

#[tokio::test]
async fn expired_entries_are_swept_from_memory() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nsweep_interval_secs = 1\n", &mock).await;
    let (brief, lasting) = (
        chat_body("How do I reverse a list in Python?"),
        chat_body("What is the boiling point of water at sea level?"),
    );
    send(&gw, &brief, &[("x-reprise-cache-ttl", "1")]).await;
    send(&gw, &lasting, &[]).await;
    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(
        (
            stats["entries"].as_u64(),
            stats["semantic_entries"].as_u64()
        ),
        (Some(2), Some(2))
    );
    // Poll the stats (never the expired question itself, which would store it again).
    let swept = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let stats: Value = gw.get_json("/admin/cache/stats").await;
            if stats["entries"] == 1 {
                return stats;
            }
        }
    };
    let stats = tokio::time::timeout(PATIENCE, swept)
        .await
        .expect("never swept");
    assert_eq!(stats["semantic_entries"], 1, "out of the semantic tier too");
    assert_eq!(cache_header(&send(&gw, &lasting, &[]).await), "hit");
}

#[tokio::test]
async fn a_full_cache_evicts_the_least_valuable_entry_from_both_tiers() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nmax_entries = 3\n", &mock).await;
    let questions = [
        "How do I reverse a list in Python?",
        "What is the boiling point of water at sea level?",
        "How do I read a file line by line in Rust?",
    ];
    for q in questions {
        assert_eq!(cache_header(&send(&gw, &chat_body(q), &[]).await), "miss");
    }
    // The first and the last are asked again: the second is the least valuable.
    for q in [questions[0], questions[2]] {
        assert_eq!(cache_header(&send(&gw, &chat_body(q), &[]).await), "hit");
    }
    let fourth = chat_body("Who wrote the novel Moby-Dick?");
    assert_eq!(cache_header(&send(&gw, &fourth, &[]).await), "miss");
    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["entries"], 3);
    // The evicted question leaves the semantic tier in the background.
    let left = async {
        while gw.get_json("/admin/cache/stats").await["semantic_entries"] != 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, left)
        .await
        .expect("the evicted question stayed in the semantic tier");
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("reprise_cache_evictions_total 1"),
        "{metrics}"
    );
    // Gone from the semantic tier too: its paraphrase goes upstream.
    let before = mock.requests().len();
    let r = send(
        &gw,
        &chat_body("What's the boiling point of water at sea level?"),
        &[],
    )
    .await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(mock.requests().len(), before + 1);
    for q in [questions[0], questions[2]] {
        assert_eq!(cache_header(&send(&gw, &chat_body(q), &[]).await), "hit");
    }
}

#[tokio::test]
async fn savings_use_the_configured_prices_and_flag_unknown_models() {
    let mock = MockUpstream::start().await;
    let toml = "[prices.\"gpt-4o-mini\"]\ninput = 1000000\noutput = 2000000\n";
    let gw = Gateway::with_config(toml, &mock).await;
    let question = chat_body("How do I reverse a list in Python?");
    send(&gw, &question, &[]).await;
    assert_eq!(cache_header(&send(&gw, &question, &[]).await), "hit");
    let mut unknown = chat_body("How do I reverse a list in Python?");
    unknown["model"] = json!("my-local-llama");
    send(&gw, &unknown, &[]).await;
    assert_eq!(cache_header(&send(&gw, &unknown, &[]).await), "hit");

    let stats: Value = gw.get_json("/admin/cache/stats").await;
    let first: Value = send(&gw, &question, &[]).await.json().await.unwrap();
    let (prompt, completion) = (
        first["usage"]["prompt_tokens"].as_f64().unwrap(),
        first["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    // $1 a prompt token, $2 a completion token; the unknown model's hit is counted, not priced.
    assert_eq!(
        stats["usd_saved"].as_f64().unwrap(),
        prompt + 2.0 * completion
    );
    assert_eq!(stats["unpriced_hits"], 1);
    assert_eq!(stats["exact_hits"], 2);
}
