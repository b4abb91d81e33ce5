//! `/metrics`: known traffic (misses, a hit, a failover, a rate-limit rejection), then the
//! exact values that follow, read through the official Prometheus Python client's parser.

use reprise_test_support::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, UPSTREAM_KEY, client, run_with_input};

/// Parses an exposition with `prometheus_client`'s text parser; returns every sample as
/// `(name, labels, value)`.
async fn parse(text: &str) -> Vec<(String, Value, f64)> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let out = run_with_input(
        tokio::process::Command::new(crate::sdk::python()).args(["-c", script]),
        text.as_bytes(),
    )
    .await;
    assert!(
        out.status.success(),
        "the parser refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: Value) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| l.get(k) == Some(v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(!found.is_empty(), "no sample {name} {labels}");
    found.iter().sum()
}

#[tokio::test]
async fn known_traffic_gives_exact_metric_values() {
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let toml = format!(
        "[[targets]]\nname = \"a\"\nbase_url = \"{}\"\napi_key_env = \"KEY\"\n[[targets]]\nname = \"b\"\nbase_url = \"{}\"\napi_key_env = \"KEY\"\n[aliases.smart]\ntargets = [{{ target = \"a\" }}, {{ target = \"b\" }}]\n[prices.smart]\ninput = 1.0\noutput = 2.0\n",
        a.base_url(),
        b.base_url()
    );
    let gw = Gateway::with_env(&toml, &[("KEY", UPSTREAM_KEY)]).await;
    let created = gw
        .post_json("/admin/keys", &json!({"label": "metrics", "rpm": 4}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let ask = |q: &str| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "smart", "messages": [{"role": "user", "content": q}]}))
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(ask("What is the capital of France?").await.unwrap()),
        200
    );
    let hit = ask("What is the capital of France?").await.unwrap();
    assert_eq!(hit.headers()["x-reprise-cache"], "hit");
    a.fail_times(1, 500);
    let failover = ask("How tall is Mount Everest?").await.unwrap();
    assert_eq!(failover.headers()["x-reprise-provider"], "b");
    assert_eq!(status(ask("Who wrote Hamlet?").await.unwrap()), 200);
    assert_eq!(status(ask("One request too many").await.unwrap()), 429);

    let r = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&key), "never a key in the metrics");
    let s = parse(&text).await;
    let chat = "/v1/chat/completions";
    let requests = |target: &str, status: &str, cache: &str| {
        value(
            &s,
            "reprise_requests_total",
            json!({"route": chat, "model": "smart", "target": target, "status": status, "cache": cache}),
        )
    };
    assert_eq!(requests("a", "2xx", "miss"), 2.0);
    assert_eq!(requests("b", "2xx", "miss"), 1.0);
    assert_eq!(requests("a", "2xx", "hit"), 1.0);
    assert_eq!(requests("none", "4xx", "bypass"), 1.0);
    let lookups =
        |result: &str| value(&s, "reprise_cache_lookups_total", json!({"result": result}));
    assert_eq!(lookups("exact_hit"), 1.0);
    assert_eq!(lookups("semantic_hit"), 0.0);
    assert_eq!(lookups("miss"), 3.0);
    assert_eq!(
        value(&s, "reprise_retries_total", json!({"target": "a"})),
        1.0
    );
    assert_eq!(
        value(&s, "reprise_failovers_total", json!({"target": "a"})),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "reprise_rejections_total",
            json!({"reason": "rpm_limit_exceeded"})
        ),
        1.0
    );
    // Three upstream answers of 5 prompt and 5 completion tokens each; the hit saved 10.
    let tokens = |d: &str| {
        value(
            &s,
            "reprise_tokens_total",
            json!({"direction": d, "model": "smart", "key": "metrics"}),
        )
    };
    assert_eq!((tokens("in"), tokens("out")), (15.0, 15.0));
    assert_eq!(
        value(
            &s,
            "reprise_saved_tokens_total",
            json!({"model": "smart", "key": "metrics"})
        ),
        10.0
    );
    assert_eq!(value(&s, "reprise_cache_entries", json!({})), 3.0);
    assert_eq!(
        value(&s, "reprise_breaker_state", json!({"target": "a"})),
        0.0
    );
    assert_eq!(
        value(
            &s,
            "reprise_request_duration_seconds_count",
            json!({"route": chat})
        ),
        5.0
    );
    assert_eq!(
        value(
            &s,
            "reprise_gateway_overhead_seconds_count",
            json!({"route": chat})
        ),
        5.0
    );
    // The finest bucket boundary is 10 µs: the overhead histogram can resolve tens of µs.
    let finest = s
        .iter()
        .filter(|(n, _, _)| n == "reprise_gateway_overhead_seconds_bucket")
        .filter_map(|(_, l, _)| l["le"].as_str()?.parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(finest, 1e-5);
    assert_eq!(value(&s, "reprise_inflight_requests", json!({})), 0.0);
    assert!(value(&s, "reprise_open_connections", json!({})) >= 1.0);
    assert!(value(&s, "reprise_resident_memory_bytes", json!({})) > 1e6);

    // The Grafana dashboard in the repository asks only for metrics that exist (after a stream,
    // which the time-to-first-token histogram needs; another key, the first has spent its rpm).
    let other = gw
        .post_json("/admin/keys", &json!({"label": "stream"}))
        .await;
    let streamed = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(other["key"].as_str().unwrap())
        .json(&json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "Stream this"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    streamed.bytes().await.unwrap();
    let text = gw.get_text("/metrics").await;
    let s = parse(&text).await;
    let grafana = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/grafana-dashboard.json"),
    )
    .unwrap();
    let dashboard: Value = serde_json::from_str(&grafana).unwrap();
    let names: std::collections::BTreeSet<&str> = s.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("reprise_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                asked += 1;
                assert!(
                    names.contains(name.as_str()),
                    "the Grafana dashboard asks for {name}, which /metrics does not have"
                );
            }
        }
    }
    assert!(asked > 15);
}
