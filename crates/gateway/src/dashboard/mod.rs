//! The dashboard at `/`: one page (`page.html`, no build step, nothing loaded from the
//! internet), its data as JSON (`/dashboard/data`), and its charts as SVG drawn on the server by
//! `plotters` (`/dashboard/chart/{name}`), refreshed every few seconds by the page.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::admin::Admin;
use crate::limits::Calendar;
use crate::series::Point;
use crate::state::unix_ms;
use crate::{AppState, GatewayError};

const PAGE: &str = include_str!("page.html");

/// `GET /`: the page.
pub async fn page(_: Admin) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

#[derive(Debug, Serialize)]
struct Headline {
    requests_today: i64,
    hits_today: i64,
    hit_rate_today: Option<f64>,
    exact_hits: u64,
    semantic_hits: u64,
    cache_misses: u64,
    saved_usd_today: f64,
    saved_usd_month: f64,
    saved_tokens_today: i64,
    saved_tokens_month: i64,
    spend_usd_today: f64,
    spend_usd_month: f64,
}

#[derive(Debug, Serialize)]
struct KeyUsage {
    label: String,
    prefix: String,
    rpm: Option<i64>,
    requests_last_minute: u64,
    tpm: Option<i64>,
    tokens_last_minute: u64,
    daily_usd: Option<f64>,
    spent_today_usd: f64,
    monthly_usd: Option<f64>,
    spent_this_month_usd: f64,
    revoked: bool,
}

#[derive(Debug, Serialize)]
struct Recent {
    time: String,
    /// As in the request's log line and `x-request-id` header.
    request_id: String,
    model: Option<String>,
    key: Option<String>,
    target: Option<String>,
    status: i64,
    cache: String,
    latency_ms: f64,
}

#[derive(Debug, Serialize)]
struct Data {
    headline: Headline,
    now: Option<Point>,
    providers: Vec<crate::routing::TargetReport>,
    keys: Vec<KeyUsage>,
    prompts_logged: bool,
    top_misses: Vec<(String, String, i64)>,
    recent: Vec<Recent>,
}

/// `GET /dashboard/data`: everything the page shows but the charts.
pub async fn data(_: Admin, State(state): State<AppState>) -> Response {
    state.ledger().flush().await;
    let reading = state.clone();
    let data = tokio::task::spawn_blocking(move || collect(&reading)).await;
    match data {
        Ok(Ok(data)) => axum::Json(data).into_response(),
        Ok(Err(err)) => {
            tracing::error!(error = %format!("{err:#}"), "could not read the dashboard's data");
            GatewayError::Internal.into_response()
        }
        Err(_) => GatewayError::Internal.into_response(),
    }
}

fn collect(state: &AppState) -> anyhow::Result<Data> {
    let store = state.store();
    let cal = Calendar::at(unix_ms());
    let today = crate::reports::usage(store, cal.day_start_ms, None)?;
    let month = crate::reports::usage(store, cal.month_start_ms, None)?;
    let saved_tokens =
        |u: &crate::reports::UsageSummary| u.lines.iter().map(|l| l.saved_tokens).sum();
    let counters = &state.cache().counters;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let headline = Headline {
        requests_today: today.requests,
        hits_today: today.cache_hits,
        hit_rate_today: (today.requests > 0)
            .then(|| today.cache_hits as f64 / today.requests as f64),
        exact_hits: load(&counters.exact_hits),
        semantic_hits: load(&counters.semantic_hits),
        cache_misses: load(&counters.misses),
        saved_usd_today: today.saved_usd,
        saved_usd_month: month.saved_usd,
        saved_tokens_today: saved_tokens(&today),
        saved_tokens_month: saved_tokens(&month),
        spend_usd_today: today.cost_usd,
        spend_usd_month: month.cost_usd,
    };
    let now = Instant::now();
    let keys = crate::reports::list(store)?
        .into_iter()
        .map(|k| {
            let (requests, tokens) = state.limiter().usage(&k.id, now);
            KeyUsage {
                label: k.label,
                prefix: k.prefix,
                rpm: k.rpm,
                requests_last_minute: requests,
                tpm: k.tpm,
                tokens_last_minute: tokens,
                daily_usd: k.daily_usd,
                spent_today_usd: k.spent_today_usd,
                monthly_usd: k.monthly_usd,
                spent_this_month_usd: k.spent_this_month_usd,
                revoked: k.revoked.is_some(),
            }
        })
        .collect();
    let recent = store
        .recent_requests(25)?
        .into_iter()
        .map(|r| Recent {
            time: crate::reports::timestamp(r.ts_ms),
            request_id: r.request_id,
            model: r.model,
            key: r.key_label,
            target: r.target,
            status: r.status,
            cache: r.cache,
            latency_ms: (r.latency_ms * 100.0).round() / 100.0,
        })
        .collect();
    let series = state.metrics().series.last_hour();
    Ok(Data {
        headline,
        now: series.iter().rev().find(|p| p.rps > 0.0).copied(),
        providers: state.router().report(now).0,
        keys,
        prompts_logged: state.config().log_prompts,
        top_misses: store.top_misses(cal.day_start_ms, 10)?,
        recent,
    })
}

#[derive(Debug, Deserialize)]
pub struct ChartQuery {
    theme: Option<String>,
}

/// `GET /dashboard/chart/{name}`: `requests`, `hit-rate`, `latency` or `overhead`, the last
/// hour as an SVG; `?theme=dark` for the dark palette.
pub async fn chart(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ChartQuery>,
) -> Response {
    let name = name.trim_end_matches(".svg");
    let points = state.metrics().series.last_hour();
    let dark = query.theme.as_deref() == Some("dark");
    match draw(name, &points, dark) {
        Some(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        None => GatewayError::UnknownRoute {
            method: "GET".to_owned(),
            path: format!("/dashboard/chart/{name}"),
        }
        .into_response(),
    }
}

type Line = (Vec<(f64, f64)>, RGBColor);

/// The chart's lines (values over minutes ago, from -60 to 0).
fn lines(name: &str, points: &[Point]) -> Option<Vec<Line>> {
    let x = |i: usize| (i as f64 - points.len() as f64 + 1.0) * 5.0 / 60.0;
    let series = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| f(p).map(|v| (x(i), v)))
            .collect()
    };
    const BLUE: RGBColor = RGBColor(59, 130, 246);
    const GREEN: RGBColor = RGBColor(16, 185, 129);
    const AMBER: RGBColor = RGBColor(245, 158, 11);
    const RED: RGBColor = RGBColor(239, 68, 68);
    Some(match name {
        "requests" => vec![(series(&|p| Some(p.rps)), BLUE)],
        "hit-rate" => vec![(series(&|p| p.hit_rate.map(|h| h * 100.0)), GREEN)],
        "latency" => vec![(series(&|p| p.p50_ms), BLUE), (series(&|p| p.p99_ms), RED)],
        "overhead" => vec![
            (series(&|p| p.overhead_p50_ms), GREEN),
            (series(&|p| p.overhead_p99_ms), AMBER),
        ],
        _ => return None,
    })
}

/// Draws a chart with no text (the page labels it), so no font is needed.
fn draw(name: &str, points: &[Point], dark: bool) -> Option<String> {
    let lines = lines(name, points)?;
    let top = lines
        .iter()
        .flat_map(|(l, _)| l.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if name == "hit-rate" {
        100.0
    } else {
        (top * 1.15).max(1e-3)
    };
    let (grid, background) = if dark {
        (RGBColor(55, 65, 81), RGBColor(17, 24, 39))
    } else {
        (RGBColor(229, 231, 235), RGBColor(255, 255, 255))
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 180)).into_drawing_area();
        root.fill(&background).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .build_cartesian_2d(-60.0f64..0.0f64, 0.0f64..top)
            .ok()?;
        for i in 1..4 {
            let y = top * f64::from(i) / 4.0;
            chart
                .draw_series(LineSeries::new([(-60.0, y), (0.0, y)], grid))
                .ok()?;
        }
        for i in 1..6 {
            let x = -60.0 + f64::from(i) * 10.0;
            chart
                .draw_series(LineSeries::new([(x, 0.0), (x, top)], grid))
                .ok()?;
        }
        for (data, color) in lines {
            // Dots as well as lines: a slot with traffic between quiet ones still shows.
            chart
                .draw_series(data.iter().map(|p| Circle::new(*p, 2, color.filled())))
                .ok()?;
            chart
                .draw_series(LineSeries::new(data, color.stroke_width(2)))
                .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_without_fonts_and_unknown_ones_do_not() {
        let points: Vec<Point> = (0..720)
            .map(|i| Point {
                t: i,
                rps: (i % 7) as f64,
                hit_rate: Some(0.5),
                errors: 0,
                p50_ms: Some(2.0),
                p99_ms: Some(9.0),
                overhead_p50_ms: Some(0.05),
                overhead_p99_ms: Some(0.2),
            })
            .collect();
        for name in ["requests", "hit-rate", "latency", "overhead"] {
            for dark in [false, true] {
                let svg = draw(name, &points, dark).unwrap();
                assert!(
                    svg.starts_with("<svg") && svg.contains("<polyline"),
                    "{name}"
                );
            }
        }
        assert!(draw("nope", &points, false).is_none());
    }
}
