//! What the key list and the usage summary show, for the CLI and the admin API alike.

use reprise_storage::Store;
use serde::Serialize;

use crate::limits::Calendar;
use crate::state::unix_ms;

/// A key as listed: never the key, never its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub label: String,
    pub prefix: String,
    pub team: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    pub models: Vec<String>,
    pub spent_today_usd: f64,
    pub spent_this_month_usd: f64,
    pub created: String,
    pub last_used: Option<String>,
    pub expires: Option<String>,
    pub revoked: Option<String>,
}

pub fn list(store: &Store) -> anyhow::Result<Vec<KeyView>> {
    let cal = Calendar::at(unix_ms());
    let (today, _) = store.spend_since(cal.day_start_ms)?;
    let (month, _) = store.spend_since(cal.month_start_ms)?;
    let spent = |rows: &[(String, i64)], id: &str| {
        rows.iter()
            .find(|(k, _)| k == id)
            .map_or(0.0, |(_, nano)| *nano as f64 / 1e9)
    };
    Ok(store
        .keys()?
        .into_iter()
        .map(|k| KeyView {
            spent_today_usd: spent(&today, &k.id),
            spent_this_month_usd: spent(&month, &k.id),
            created: timestamp(k.created_ms),
            last_used: k.last_used_ms.map(timestamp),
            expires: k.expires_ms.map(timestamp),
            revoked: k.revoked_ms.map(timestamp),
            models: k
                .models
                .map(|m| m.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            id: k.id,
            label: k.label,
            prefix: k.prefix,
            team: k.team,
            rpm: k.rpm,
            tpm: k.tpm,
            daily_usd: k.daily_usd,
            monthly_usd: k.monthly_usd,
        })
        .collect())
}

/// One line of the usage summary: a key, a model, a UTC day.
#[derive(Debug, Serialize)]
pub struct UsageLine {
    pub day: String,
    pub key_id: Option<String>,
    pub model: String,
    pub requests: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    /// Requests on models with no price: counted in tokens only.
    pub unpriced_requests: i64,
    pub saved_tokens: i64,
    pub saved_usd: f64,
}

#[derive(Debug, Serialize)]
pub struct UsageSummary {
    pub since: String,
    pub requests: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub unpriced_requests: i64,
    pub lines: Vec<UsageLine>,
}

pub fn usage(store: &Store, since_ms: i64, key: Option<&str>) -> anyhow::Result<UsageSummary> {
    let rows = store.usage(since_ms, key)?;
    let usd = |nano: i64| (nano as f64 / 1e9 * 1e6).round() / 1e6;
    let sum = |f: fn(&reprise_storage::UsageRow) -> i64| rows.iter().map(f).sum::<i64>();
    Ok(UsageSummary {
        since: timestamp(since_ms),
        requests: sum(|r| r.requests),
        cache_hits: sum(|r| r.cache_hits),
        prompt_tokens: sum(|r| r.prompt_tokens),
        completion_tokens: sum(|r| r.completion_tokens),
        cost_usd: usd(sum(|r| r.cost_nano_usd)),
        saved_usd: usd(sum(|r| r.saved_nano_usd)),
        unpriced_requests: sum(|r| r.unpriced_requests),
        lines: rows
            .iter()
            .map(|r| UsageLine {
                day: r.day.clone(),
                key_id: r.key_id.clone(),
                model: r.model.clone(),
                requests: r.requests,
                cache_hits: r.cache_hits,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cost_usd: usd(r.cost_nano_usd),
                unpriced_requests: r.unpriced_requests,
                saved_tokens: r.saved_tokens,
                saved_usd: usd(r.saved_nano_usd),
            })
            .collect(),
    })
}

/// `YYYY-MM-DD` (UTC midnight) or RFC 3339, in Unix milliseconds.
pub fn parse_date(text: &str) -> anyhow::Result<i64> {
    let parsed = humantime::parse_rfc3339_weak(text)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{text} 00:00:00")))
        .map_err(|_| anyhow::anyhow!("{text:?} is not a date (YYYY-MM-DD)"))?;
    let ms = parsed
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("{text:?} is before 1970"))?
        .as_millis();
    Ok(i64::try_from(ms)?)
}

pub(crate) fn timestamp(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2026-11-21").unwrap(), 1_795_219_200_000);
        assert_eq!(
            parse_date("2026-11-21T20:00:00Z").unwrap(),
            1_795_291_200_000
        );
        assert!(parse_date("yesterday").is_err());
        assert_eq!(timestamp(1_795_291_200_000), "2026-11-21T20:00:00Z");
    }
}
