//! The semantic tier on a remote OpenAI-compatible embeddings endpoint (a second mock stands in
//! for OpenAI, Ollama, vLLM or TEI).

use reprise_test_support::{MockUpstream, bag_of_words};
use serde_json::Value;

use crate::support::{Gateway, UPSTREAM_KEY, chat_body};

const EMBED_KEY: &str = "ek-test-EMBEDDING-SECRET";

async fn gateway(chat: &MockUpstream, embeddings: &MockUpstream) -> Gateway {
    let toml = format!(
        "[cache]\nsimilarity_threshold = 0.8\n[cache.embedding]\nbase_url = \"{}\"\nmodel = \"text-embedding-3-small\"\napi_key_env = \"EMBED_KEY\"\n",
        embeddings.base_url()
    );
    let base_url = chat.base_url();
    Gateway::with_env(
        &toml,
        &[
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", &base_url),
            ("EMBED_KEY", EMBED_KEY),
        ],
    )
    .await
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn a_remote_model_embeds_questions_only_after_an_exact_miss() {
    let (chat, embeddings) = (MockUpstream::start().await, MockUpstream::start().await);
    let gw = gateway(&chat, &embeddings).await;
    let (asked, paraphrase) = (
        "How do I reverse a list in Python?",
        "How can I reverse a list in Python?",
    );
    assert_eq!(
        gw.chat(&chat_body(asked)).await.headers()["x-reprise-cache"],
        "miss"
    );
    let r = gw.chat(&chat_body(paraphrase)).await;
    let h = r.headers().clone();
    assert_eq!(h["x-reprise-cache"], "hit");
    assert_eq!(h["x-reprise-cache-kind"], "semantic");
    // The similarity is the remote model's (the embedded model would give another figure).
    let similarity: f32 = h["x-reprise-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = cosine(&bag_of_words(asked), &bag_of_words(paraphrase));
    assert!(
        (similarity - expected).abs() < 1e-3,
        "{similarity} vs {expected}"
    );
    // An exact repeat needs no embedding.
    assert_eq!(
        gw.chat(&chat_body(asked)).await.headers()["x-reprise-cache-kind"],
        "exact"
    );

    assert_eq!(chat.requests().len(), 1);
    let calls = embeddings.requests();
    assert_eq!(calls.len(), 2, "one embedding per exact miss");
    for (call, text) in calls.iter().zip([asked, paraphrase]) {
        assert_eq!(call.path, "/v1/embeddings");
        assert_eq!(call.body["model"], "text-embedding-3-small");
        assert_eq!(call.body["input"], serde_json::json!([text]));
        assert_eq!(call.headers["authorization"], format!("Bearer {EMBED_KEY}"));
    }
    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["semantic_entries"], 1);
    assert_eq!(
        stats["embedding_model"],
        format!(
            "text-embedding-3-small at {}/embeddings",
            embeddings.base_url()
        )
    );
}

#[tokio::test]
async fn a_failing_embedding_endpoint_costs_only_the_semantic_tier() {
    let (chat, embeddings) = (MockUpstream::start().await, MockUpstream::start().await);
    embeddings.fail_times(2, 503);
    let gw = gateway(&chat, &embeddings).await;
    let asked = "How do I reverse a list in Python?";
    for question in [asked, "How can I reverse a list in Python?"] {
        let r = gw.chat(&chat_body(question)).await;
        assert_eq!(r.status(), 200, "answered by the upstream");
        assert_eq!(r.headers()["x-reprise-cache"], "miss");
    }
    assert_eq!(chat.requests().len(), 2);
    // The exact tier still works, and an entry stored without its vector is not in the
    // semantic tier.
    assert_eq!(
        gw.chat(&chat_body(asked)).await.headers()["x-reprise-cache-kind"],
        "exact"
    );
    let stats: Value = gw.get_json("/admin/cache/stats").await;
    assert_eq!(stats["entries"], 2);
    assert_eq!(stats["semantic_entries"], 0);
}
