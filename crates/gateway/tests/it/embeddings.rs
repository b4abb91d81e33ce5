//! The embeddings cache through HTTP: each input is cached on its own, so a batch sends only
//! the inputs the cache lacks upstream, and the client gets every embedding in its order, as
//! the upstream wrote it.

use reprise_test_support::{MockUpstream, Step};
use serde_json::{Value, json};

use crate::support::{Gateway, Process, client};

const MODEL: &str = "text-embedding-3-small";

async fn embed(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> (String, String, Value) {
    let mut request = client().post(gw.url("/v1/embeddings")).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache, hits) = (header("x-reprise-cache"), header("x-reprise-cache-hits"));
    (cache, hits, r.json().await.unwrap())
}

fn inputs(body: Value) -> Value {
    json!({"model": MODEL, "input": body})
}

/// The embeddings of a list, by index, as JSON text.
fn vectors(list: &Value) -> Vec<String> {
    let data = list["data"].as_array().unwrap();
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i, "{list}");
        assert_eq!(item["object"], "embedding");
    }
    data.iter().map(|d| d["embedding"].to_string()).collect()
}

#[tokio::test]
async fn each_input_is_cached_and_only_new_ones_go_upstream() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;

    let (cache, hits, first) = embed(&gw, &inputs(json!(["alpha beta", "gamma delta"])), &[]).await;
    assert_eq!((cache.as_str(), hits.as_str()), ("miss", "0"));
    let first_vectors = vectors(&first);
    assert_eq!(first["usage"]["prompt_tokens"], 4);

    // The same batch: no upstream call, the same embeddings, the same usage.
    let (cache, hits, again) = embed(&gw, &inputs(json!(["alpha beta", "gamma delta"])), &[]).await;
    assert_eq!((cache.as_str(), hits.as_str()), ("hit", "2"));
    assert_eq!(vectors(&again), first_vectors);
    assert_eq!(again["model"], first["model"]);
    assert_eq!(
        again["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    assert_eq!(mock.requests().len(), 1);

    // A batch mixing known and new inputs: only the new one goes upstream.
    let (cache, hits, mixed) = embed(
        &gw,
        &inputs(json!(["gamma delta", "epsilon zeta", "alpha beta"])),
        &[],
    )
    .await;
    assert_eq!((cache.as_str(), hits.as_str()), ("miss", "2"));
    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].body["input"], json!(["epsilon zeta"]));
    assert_eq!(sent[1].body["model"], MODEL);
    let mixed_vectors = vectors(&mixed);
    assert_eq!(mixed_vectors[0], first_vectors[1]);
    assert_eq!(mixed_vectors[2], first_vectors[0]);
    let fresh = json!(reprise_test_support::bag_of_words("epsilon zeta")).to_string();
    assert_eq!(mixed_vectors[1], fresh);
    // The tokens of the whole batch: 2 billed upstream, 2 + 2 from the cache.
    assert_eq!(mixed["usage"]["prompt_tokens"], 6);

    // The new input alone, as a string, is now in the cache too.
    let (cache, _, single) = embed(&gw, &inputs(json!("epsilon zeta")), &[]).await;
    assert_eq!(cache, "hit");
    assert_eq!(vectors(&single), vec![fresh]);
    assert_eq!(mock.requests().len(), 2);

    let stats = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["exact_hits"], 2);
    assert_eq!(stats["misses"], 2);
    assert_eq!(stats["entries"], 3);
    assert_eq!(stats["prompt_tokens_saved"], 4 + 4 + 2);
    // Inputs: 2 + 1 sent upstream; 2 + 2 + 1 answered from the cache.
    assert_eq!(stats["embedding_inputs_upstream"], 3);
    assert_eq!(stats["embedding_inputs_cached"], 5);
    let metrics = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("reprise_cache_embedding_inputs_total{result=\"cached\"} 5"),
        "{metrics}"
    );
    // Priced (text-embedding-3-small is in the shipped table): the savings are in dollars too.
    assert!(stats["usd_saved"].as_f64().unwrap() > 0.0, "{stats}");
}

#[tokio::test]
async fn what_changes_the_vectors_is_another_entry() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let base = inputs(json!("alpha beta"));
    assert_eq!(embed(&gw, &base, &[]).await.0, "miss");
    let mut with_user = base.clone();
    with_user["user"] = json!("someone");
    with_user["encoding_format"] = json!("float");
    assert_eq!(embed(&gw, &with_user, &[]).await.0, "hit");

    let mut upstream_calls = 1;
    for (field, value) in [
        ("model", json!("text-embedding-3-large")),
        ("dimensions", json!(16)),
        ("encoding_format", json!("base64")),
    ] {
        let mut other = base.clone();
        other[field] = value;
        let (cache, _, first) = embed(&gw, &other, &[]).await;
        assert_eq!(cache, "miss", "{field}");
        let (cache, _, again) = embed(&gw, &other, &[]).await;
        assert_eq!(cache, "hit", "{field}");
        assert_eq!(vectors(&again), vectors(&first), "{field}");
        upstream_calls += 1;
    }
    // base64 embeddings are kept as the string the upstream sent.
    let mut b64 = base.clone();
    b64["encoding_format"] = json!("base64");
    let (_, _, list) = embed(&gw, &b64, &[]).await;
    assert!(list["data"][0]["embedding"].is_string(), "{list}");
    assert_eq!(mock.requests().len(), upstream_calls);
}

#[tokio::test]
async fn directives_failures_and_odd_inputs() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    let body = inputs(json!(["alpha beta"]));

    // no-store: neither served nor stored.
    let (cache, hits, _) = embed(&gw, &body, &[("cache-control", "no-store")]).await;
    assert_eq!((cache.as_str(), hits.as_str()), ("bypass", ""));
    assert_eq!(embed(&gw, &body, &[]).await.0, "miss");
    // no-cache: not served, stored again.
    assert_eq!(
        embed(&gw, &body, &[("cache-control", "no-cache")]).await.0,
        "miss"
    );
    assert_eq!(embed(&gw, &body, &[]).await.0, "hit");
    assert_eq!(mock.requests().len(), 3);

    // An upstream error is passed on (a 400: not retried) and nothing is stored.
    mock.push(Step::Fail(400));
    let failing = inputs(json!(["never stored"]));
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .json(&failing)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(embed(&gw, &failing, &[]).await.0, "miss");

    // Token arrays are inputs too; a shape the API refuses is the upstream's to answer.
    let tokens = inputs(json!([[1, 2, 3], [4, 5]]));
    assert_eq!(embed(&gw, &tokens, &[]).await.0, "miss");
    assert_eq!(embed(&gw, &inputs(json!([4, 5])), &[]).await.0, "hit");
    let odd = inputs(json!([{"text": "a"}]));
    let (cache, _, _) = embed(&gw, &odd, &[]).await;
    assert_eq!(cache, "bypass");
}

#[tokio::test]
async fn a_cut_answer_with_cached_inputs_is_a_502_and_nothing_is_stored() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::start(&mock).await;
    embed(&gw, &inputs(json!("alpha beta")), &[]).await;
    // The upstream answers two inputs with one embedding.
    mock.push(Step::Status {
        status: 200,
        body: json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
            "model": MODEL,
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })
        .to_string(),
        headers: Vec::new(),
    });
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .json(&inputs(json!(["alpha beta", "one", "two"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_broken_response");
    let (cache, hits, _) = embed(&gw, &inputs(json!(["one", "two"])), &[]).await;
    assert_eq!((cache.as_str(), hits.as_str()), ("miss", "0"));
}

#[tokio::test]
async fn embeddings_survive_a_restart() {
    let mock = MockUpstream::start().await;
    let ask = |url: String| async move {
        let r = client()
            .post(url.replace("/chat/completions", "/embeddings"))
            .json(&inputs(json!(["alpha beta", "gamma delta"])))
            .send()
            .await
            .unwrap();
        let cache = r.headers()["x-reprise-cache"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        (cache, vectors(&body))
    };
    let (mut first, url) = Process::serve(&mock, None).await;
    let (cache, before) = ask(url).await;
    assert_eq!(cache, "miss");
    first.terminate().await;
    assert_eq!(first.finish().await.0, Some(0));
    let (mut second, url) = Process::serve(&mock, Some(first.into_data_dir())).await;
    let (cache, after) = ask(url).await;
    assert_eq!(cache, "hit");
    assert_eq!(after, before);
    assert_eq!(mock.requests().len(), 1);
    second.terminate().await;
    assert_eq!(second.finish().await.0, Some(0));
}

#[tokio::test]
async fn identical_concurrent_batches_share_one_upstream_call() {
    let mock = MockUpstream::start().await;
    mock.delay_first_byte(std::time::Duration::from_millis(300));
    let gw = Gateway::start(&mock).await;
    let body = inputs(json!(["alpha beta", "gamma delta"]));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (url, body) = (gw.url("/v1/embeddings"), body.clone());
            tokio::spawn(async move {
                let r = client().post(url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let cache = r.headers()["x-reprise-cache"].to_str().unwrap().to_owned();
                let list: Value = r.json().await.unwrap();
                (cache, vectors(&list))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let misses = answers.iter().filter(|(c, _)| c == "miss").count();
    assert_eq!(misses, 1);
    assert!(answers.iter().all(|(_, v)| v == &answers[0].1));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn tenants_never_share_embeddings() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config("[cache]\nnamespace_header = true\n", &mock).await;
    let body = inputs(json!(["alpha beta"]));
    let a = [("x-reprise-namespace", "team-a")];
    let b = [("x-reprise-namespace", "team-b")];
    assert_eq!(embed(&gw, &body, &a).await.0, "miss");
    assert_eq!(embed(&gw, &body, &b).await.0, "miss");
    assert_eq!(embed(&gw, &body, &a).await.0, "hit");
    assert_eq!(
        embed(&gw, &body, &[]).await.0,
        "miss",
        "no namespace is its own"
    );
    assert_eq!(mock.requests().len(), 3);
}
