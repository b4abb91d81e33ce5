//! Browser pages: a page of another origin is refused before any work (it could otherwise spend
//! through a gateway on the operator's machine), unless `cors_origins` lists it, and then only
//! on the API routes, with CORS preflights answered.

use reprise_test_support::MockUpstream;
use serde_json::json;

use crate::support::{Gateway, chat_body, client, error_of};

const APP: &str = "https://app.example.com";

/// `GET` of each path with `header`: refused with a 403.
async fn refused_reading(gw: &Gateway, paths: &[&str], header: (&str, &str)) {
    for path in paths {
        let r = client()
            .get(gw.url(path))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r, 403).await["code"], "forbidden", "{path}");
    }
}

/// A "simple" cross-origin request (text/plain: no preflight), as any page can send, from
/// `origin` and asking for `host` (the gateway's address when `None`): refused with a 403.
async fn refused_spending(gw: &Gateway, origin: &str, host: Option<&str>) -> serde_json::Value {
    let mut request = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", origin)
        .header("content-type", "text/plain")
        .body(chat_body("Spend my money").to_string());
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let r = request.send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let error = error_of(r, 403).await;
    assert_eq!(error["code"], "forbidden");
    error
}

#[tokio::test]
async fn a_page_of_another_origin_cannot_use_the_gateway() {
    let mock = MockUpstream::builder().record(true).start().await;
    let gw = Gateway::start(&mock).await;

    let error = refused_spending(&gw, "https://evil.example", None).await;
    assert!(
        error["message"].as_str().unwrap().contains("cors_origins"),
        "{error}"
    );
    let paths = ["/admin/cache/stats", "/metrics", "/dashboard/data"];
    refused_reading(&gw, &paths, ("origin", "https://evil.example")).await;
    assert!(
        mock.requests().is_empty(),
        "a refused request went upstream"
    );

    // The gateway's own pages (same origin) and clients that send no Origin are served.
    let own = format!("http://{}", gw.addr);
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", &own)
        .json(&chat_body("Hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(gw.url("/dashboard/data"))
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.chat(&chat_body("Hello")).await.status(), 200);
}

#[tokio::test]
async fn listed_origins_may_call_the_api_routes_with_preflights() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config(&format!("cors_origins = [\"{APP}\"]"), &mock).await;

    // The preflight the OpenAI JS SDK's request causes in a browser.
    let r = client()
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-stainless-os",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type,x-stainless-os"
    );

    // The request itself: served, and the page may read the gateway's headers.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", APP)
        .json(&chat_body("Hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("x-reprise-cache")
            && exposed.contains("x-reprise-cache-hits")
            && exposed.contains("x-request-id"),
        "{exposed}"
    );
    let r = client()
        .post(gw.url("/v1/moderations"))
        .header("origin", APP)
        .json(&json!({"input": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Not another origin, and never the admin routes.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "https://other.example.com")
        .json(&chat_body("Hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .get(gw.url("/admin/cache/stats"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    let error = error_of(r, 403).await;
    assert!(
        error["message"].as_str().unwrap().contains("admin routes"),
        "{error}"
    );
}

/// DNS rebinding: a page at `http://evil.example:PORT` whose name is made to resolve to
/// 127.0.0.1 sends requests that carry its own name as both `Host` and `Origin`, so they look
/// same-origin. A gateway on loopback answers only to IP addresses and `localhost` unless
/// `allowed_hosts` lists the name.
#[tokio::test]
async fn a_page_rebound_to_the_gateway_address_is_refused() {
    let mock = MockUpstream::builder().record(true).start().await;
    let gw = Gateway::start(&mock).await;
    let port = gw.addr.port();
    let evil = format!("evil.example:{port}");

    let error = refused_spending(&gw, &format!("http://{evil}"), Some(&evil)).await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("allowed_hosts") && message.contains("\"evil.example\""),
        "{error}"
    );
    // Same-origin GETs carry no Origin at all: the admin routes are refused by their Host.
    let paths = [
        "/admin/cache/stats",
        "/admin/keys",
        "/metrics",
        "/dashboard/data",
    ];
    refused_reading(&gw, &paths, ("host", &evil)).await;
    assert!(
        mock.requests().is_empty(),
        "a refused request went upstream"
    );

    // The names a browser cannot be made to resolve elsewhere are answered.
    for host in [
        format!("localhost:{port}"),
        format!("app.localhost:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .header("host", &host)
            .header("origin", format!("http://{host}"))
            // Another question each time, so each goes upstream rather than to the cache.
            .json(&chat_body(&format!("Hello from {host}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn allowed_hosts_lets_a_proxied_name_through() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::with_config(
        "allowed_hosts = [\"gw.example\", \"*.corp.example\"]",
        &mock,
    )
    .await;
    for host in ["gw.example", "gw.example:8443", "team.corp.example"] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .header("host", host)
            .json(&chat_body("Hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let r = client()
            .get(gw.url("/admin/cache/stats"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    let r = client()
        .get(gw.url("/v1/models"))
        .header("host", "corp.example")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 403).await["code"], "forbidden");
}
