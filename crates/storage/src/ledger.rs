//! The usage ledger: one row per request, written in batches.

use crate::{Store, StoreError};

/// Request-log rows deleted under one hold of the store's lock.
pub const LOG_DELETE_BATCH: usize = 10_000;

/// One request's usage, cost and savings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub ts_ms: i64,
    pub request_id: String,
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub model: String,
    pub target: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    /// `None` when the model has no price.
    pub cost_nano_usd: Option<i64>,
    /// `hit`, `miss` or `bypass`.
    pub cache: String,
    pub saved_tokens: i64,
    pub saved_nano_usd: Option<i64>,
}

/// One request as the dashboard lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub ts_ms: i64,
    pub request_id: String,
    pub route: String,
    pub model: Option<String>,
    pub key_label: Option<String>,
    pub target: Option<String>,
    pub status: i64,
    pub cache: String,
    pub latency_ms: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nano_usd: Option<i64>,
    /// The final user message, only when prompt logging is on.
    pub prompt: Option<String>,
}

/// Usage summed over one key, model and UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub day: String,
    pub key_id: Option<String>,
    pub model: String,
    pub requests: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nano_usd: i64,
    pub unpriced_requests: i64,
    pub saved_tokens: i64,
    pub saved_nano_usd: i64,
}

/// Nano-USD spent, by holder (key id or team name).
pub type Spent = Vec<(String, i64)>;

impl Store {
    /// Appends rows in one transaction (all or none), and stamps each key's last use.
    pub fn append_ledger(&self, rows: &[LedgerRow]) -> Result<(), StoreError> {
        self.append(rows, &[])
    }

    /// Appends ledger rows and request-log rows in one transaction (all or none).
    pub fn append(&self, rows: &[LedgerRow], log: &[RequestRow]) -> Result<(), StoreError> {
        if rows.is_empty() && log.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ledger (ts_ms, request_id, key_id, team, model, target, prompt_tokens,
                    completion_tokens, cached_tokens, cost_nano_usd, cache, saved_tokens,
                    saved_nano_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            // Each key's last use: one update a key a batch, not one a request.
            let mut last_used: std::collections::HashMap<&str, i64> =
                std::collections::HashMap::new();
            for r in rows {
                insert.execute(rusqlite::params![
                    r.ts_ms,
                    r.request_id,
                    r.key_id,
                    r.team,
                    r.model,
                    r.target,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.cached_tokens,
                    r.cost_nano_usd,
                    r.cache,
                    r.saved_tokens,
                    r.saved_nano_usd
                ])?;
                if let Some(key) = &r.key_id {
                    let at = last_used.entry(key).or_insert(r.ts_ms);
                    *at = (*at).max(r.ts_ms);
                }
            }
            let mut used = tx.prepare_cached(
                "UPDATE api_keys SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ?2)
                 WHERE id = ?1",
            )?;
            for (key, at) in last_used {
                used.execute(rusqlite::params![key, at])?;
            }
            let mut logged = tx.prepare_cached(
                "INSERT INTO request_log (ts_ms, request_id, route, model, key_label, target,
                    status, cache, latency_ms, prompt_tokens, completion_tokens, cost_nano_usd,
                    prompt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for r in log {
                logged.execute(rusqlite::params![
                    r.ts_ms,
                    r.request_id,
                    r.route,
                    r.model,
                    r.key_label,
                    r.target,
                    r.status,
                    r.cache,
                    r.latency_ms,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.cost_nano_usd,
                    r.prompt
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest requests, newest first.
    pub fn recent_requests(&self, limit: usize) -> Result<Vec<RequestRow>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare(
            "SELECT ts_ms, request_id, route, model, key_label, target, status, cache, latency_ms,
                prompt_tokens, completion_tokens, cost_nano_usd, prompt
             FROM request_log ORDER BY ts_ms DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(RequestRow {
                ts_ms: r.get(0)?,
                request_id: r.get(1)?,
                route: r.get(2)?,
                model: r.get(3)?,
                key_label: r.get(4)?,
                target: r.get(5)?,
                status: r.get(6)?,
                cache: r.get(7)?,
                latency_ms: r.get(8)?,
                prompt_tokens: r.get(9)?,
                completion_tokens: r.get(10)?,
                cost_nano_usd: r.get(11)?,
                prompt: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most frequent questions the cache did not answer since `since_ms` (rows with a
    /// prompt only): (model, prompt, times).
    pub fn top_misses(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare(
            "SELECT COALESCE(model, ''), prompt, COUNT(*) AS n FROM request_log
             WHERE ts_ms >= ?1 AND prompt IS NOT NULL AND cache <> 'hit' AND status < 400
             GROUP BY model, prompt ORDER BY n DESC, prompt LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![since_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes request-log rows older than `before_ms` (the retention), and the oldest rows
    /// beyond the newest `max_rows`. Returns how many went. Rows go in batches of
    /// [`LOG_DELETE_BATCH`], the store's lock released between them, so that a large backlog
    /// (a shorter retention or a lower bound than the last run's) does not hold up the cache's
    /// writes.
    pub fn expire_request_log(&self, before_ms: i64, max_rows: u64) -> Result<usize, StoreError> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let batch = i64::try_from(LOG_DELETE_BATCH).unwrap_or(i64::MAX);
        let mut deleted = 0;
        // Past the retention (by the time index)...
        loop {
            let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
            let n = conn.execute(
                "DELETE FROM request_log WHERE id IN
                    (SELECT id FROM request_log WHERE ts_ms < ?1 LIMIT ?2)",
                rusqlite::params![before_ms, batch],
            )?;
            deleted += n;
            if n < LOG_DELETE_BATCH {
                break;
            }
        }
        // ...then beyond the bound: rows are numbered in the order they were written, so the
        // oldest are those numbered up to the newest's number less the bound.
        loop {
            let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
            let newest: Option<i64> =
                conn.query_row("SELECT MAX(id) FROM request_log", [], |r| r.get(0))?;
            let Some(last) = newest.map(|newest| newest.saturating_sub(max_rows)) else {
                break;
            };
            let n = conn.execute(
                "DELETE FROM request_log WHERE id IN
                    (SELECT id FROM request_log WHERE id <= ?1 ORDER BY id LIMIT ?2)",
                rusqlite::params![last, batch],
            )?;
            deleted += n;
            if n < LOG_DELETE_BATCH {
                break;
            }
        }
        Ok(deleted)
    }

    /// Spend (nano-USD) since `since_ms`, by key and by team. `since_ms` is the start of a UTC
    /// day (a day's or a month's spend): days rolled up (see [`Store::roll_up_ledger`]) count
    /// from their totals.
    pub fn spend_since(&self, since_ms: i64) -> Result<(Spent, Spent), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let sum = |column: &str| -> Result<Vec<(String, i64)>, StoreError> {
            let mut stmt = conn.prepare(&format!(
                "SELECT holder, SUM(spent) FROM (
                    SELECT {column} AS holder, COALESCE(SUM(cost_nano_usd), 0) AS spent
                    FROM ledger WHERE ts_ms >= ?1 AND {column} IS NOT NULL GROUP BY {column}
                    UNION ALL
                    SELECT {column}, SUM(cost_nano_usd) FROM ledger_daily
                    WHERE day >= date(?1 / 1000, 'unixepoch') AND {column} <> ''
                    GROUP BY {column})
                 GROUP BY holder ORDER BY holder"
            ))?;
            let rows = stmt.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        Ok((sum("key_id")?, sum("team")?))
    }

    /// Usage by UTC day, key and model since `since_ms` (the start of a UTC day), optionally
    /// for one key: the ledger's rows and its rolled-up days together.
    pub fn usage(&self, since_ms: i64, key_id: Option<&str>) -> Result<Vec<UsageRow>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT day, NULLIF(key_id, ''), model, SUM(requests), SUM(cache_hits),
                SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nano_usd),
                SUM(unpriced_requests), SUM(saved_tokens), SUM(saved_nano_usd)
             FROM (
                SELECT date(ts_ms / 1000, 'unixepoch') AS day, COALESCE(key_id, '') AS key_id,
                    model, {LEDGER_SUMS}
                FROM ledger
                WHERE ts_ms >= ?1 AND (?2 IS NULL OR key_id = ?2)
                GROUP BY day, key_id, model
                UNION ALL
                SELECT day, key_id, model, requests, cache_hits, prompt_tokens,
                    completion_tokens, cost_nano_usd, unpriced_requests, saved_tokens,
                    saved_nano_usd
                FROM ledger_daily
                WHERE day >= date(?1 / 1000, 'unixepoch') AND (?2 IS NULL OR key_id = ?2))
             GROUP BY day, key_id, model
             ORDER BY day, key_id, model",
        ))?;
        let rows = stmt.query_map(rusqlite::params![since_ms, key_id], |r| {
            Ok(UsageRow {
                day: r.get(0)?,
                key_id: r.get(1)?,
                model: r.get(2)?,
                requests: r.get(3)?,
                cache_hits: r.get(4)?,
                prompt_tokens: r.get(5)?,
                completion_tokens: r.get(6)?,
                cost_nano_usd: r.get(7)?,
                unpriced_requests: r.get(8)?,
                saved_tokens: r.get(9)?,
                saved_nano_usd: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sums the ledger's rows older than `before_ms` (the start of a UTC day) into daily totals
    /// by key, team and model, and deletes them: what spend, budgets and usage reports read of
    /// those days is unchanged, and the ledger no longer grows with every request for ever. One
    /// hour's rows at a time, each in one transaction (a crash leaves an hour either added to
    /// its day's totals or still in the ledger). Returns the rows rolled up.
    pub fn roll_up_ledger(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut rolled = 0;
        loop {
            let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
            let oldest: Option<i64> = conn.query_row(
                "SELECT MIN(ts_ms) FROM ledger WHERE ts_ms < ?1",
                [before_ms],
                |r| r.get(0),
            )?;
            let Some(oldest) = oldest else {
                return Ok(rolled);
            };
            // An hour of rows at a time (added to its day's totals), so that a busy hour holds
            // the store for as little as it can.
            let hour_end = (oldest.div_euclid(HOUR_MS) + 1) * HOUR_MS;
            let end = hour_end.min(before_ms);
            let tx = conn.transaction()?;
            tx.execute(
                &format!(
                    "INSERT INTO ledger_daily (day, key_id, team, model, requests, cache_hits,
                    prompt_tokens, completion_tokens, cost_nano_usd, unpriced_requests,
                    saved_tokens, saved_nano_usd)
                 SELECT date(ts_ms / 1000, 'unixepoch'), COALESCE(key_id, ''),
                    COALESCE(team, ''), model, {LEDGER_SUMS}
                 FROM ledger WHERE ts_ms >= ?1 AND ts_ms < ?2
                 GROUP BY 1, 2, 3, 4
                 ON CONFLICT (day, key_id, team, model) DO UPDATE SET
                    requests = requests + excluded.requests,
                    cache_hits = cache_hits + excluded.cache_hits,
                    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                    completion_tokens = completion_tokens + excluded.completion_tokens,
                    cost_nano_usd = cost_nano_usd + excluded.cost_nano_usd,
                    unpriced_requests = unpriced_requests + excluded.unpriced_requests,
                    saved_tokens = saved_tokens + excluded.saved_tokens,
                    saved_nano_usd = saved_nano_usd + excluded.saved_nano_usd"
                ),
                [oldest, end],
            )?;
            rolled += tx.execute(
                "DELETE FROM ledger WHERE ts_ms >= ?1 AND ts_ms < ?2",
                [oldest, end],
            )?;
            tx.commit()?;
        }
    }
}

/// What a group of ledger rows sums to, in `ledger_daily`'s column order from `requests` on:
/// the usage report reads it of the rows, the roll-up stores it.
const LEDGER_SUMS: &str = "COUNT(*) AS requests,
    SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END) AS cache_hits,
    SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens,
    COALESCE(SUM(cost_nano_usd), 0) AS cost_nano_usd,
    SUM(CASE WHEN cost_nano_usd IS NULL AND cache <> 'hit' THEN 1 ELSE 0 END)
        AS unpriced_requests,
    SUM(saved_tokens) AS saved_tokens, COALESCE(SUM(saved_nano_usd), 0) AS saved_nano_usd";

const HOUR_MS: i64 = 3_600_000;
#[cfg(test)]
const DAY_MS: i64 = 24 * HOUR_MS;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: Option<&str>, ts_ms: i64, cost: Option<i64>, cache: &str) -> LedgerRow {
        LedgerRow {
            ts_ms,
            request_id: "r".into(),
            key_id: key.map(str::to_owned),
            team: None,
            model: "gpt-4o".into(),
            target: Some("openai".into()),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
            cost_nano_usd: cost,
            cache: cache.into(),
            saved_tokens: if cache == "hit" { 15 } else { 0 },
            saved_nano_usd: (cache == "hit").then_some(7),
        }
    }

    fn logged(ts_ms: i64, n: usize) -> RequestRow {
        RequestRow {
            ts_ms,
            request_id: format!("req-{n}"),
            route: "chat".into(),
            model: Some("gpt-4o".into()),
            key_label: None,
            target: Some("openai".into()),
            status: 200,
            cache: "miss".into(),
            latency_ms: 1.0,
            prompt_tokens: 1,
            completion_tokens: 1,
            cost_nano_usd: None,
            prompt: None,
        }
    }

    fn logged_ids(store: &Store) -> Vec<String> {
        let conn = store.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT request_id FROM request_log ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_request_log_keeps_its_retention_and_its_bound_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // More rows than two batches: 100 old ones (ts 0..100), then new ones (ts 1000..).
        let total = 2 * LOG_DELETE_BATCH + 500;
        let rows: Vec<RequestRow> = (0..total)
            .map(|n| logged(if n < 100 { n as i64 } else { 1_000 + n as i64 }, n))
            .collect();
        store.append(&[], &rows).unwrap();
        // Nothing past either: nothing goes.
        assert_eq!(store.expire_request_log(0, u64::MAX).unwrap(), 0);
        // The retention takes the 100 old ones...
        assert_eq!(store.expire_request_log(1_000, u64::MAX).unwrap(), 100);
        // ...the bound the oldest of the rest, over more than one batch, newest kept.
        assert_eq!(
            store.expire_request_log(1_000, 300).unwrap(),
            total - 100 - 300
        );
        let kept = logged_ids(&store);
        let expected: Vec<String> = (total - 300..total).map(|n| format!("req-{n}")).collect();
        assert_eq!(kept, expected);
        // Rows written later are numbered after them: the bound keeps taking the oldest.
        store.append(&[], &[logged(5_000_000, total)]).unwrap();
        assert_eq!(store.expire_request_log(1_000, 300).unwrap(), 1);
        assert_eq!(logged_ids(&store)[0], format!("req-{}", total - 299));
    }

    #[test]
    fn rolled_up_days_report_the_same_spend_and_usage_and_leave_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day = |d: i64, ms: i64| d * DAY_MS + ms;
        let mut rows = Vec::new();
        // Three days of traffic: two keys (one in a team), one keyless, hits, unpriced.
        for d in 0..3 {
            for i in 0..5 {
                let mut r = row(Some("k1"), day(d, i * 1000), Some(100 + i), "miss");
                r.team = Some("research".into());
                rows.push(r);
                rows.push(row(Some("k2"), day(d, i * 1000 + 1), None, "miss"));
                rows.push(row(None, day(d, i * 1000 + 2), Some(7), "hit"));
            }
            let mut other = row(Some("k2"), day(d, 5 * HOUR_MS), Some(3), "miss");
            other.model = "gpt-4o-mini".into();
            rows.push(other);
        }
        store.append_ledger(&rows).unwrap();
        let report = |since: i64| {
            (
                store.spend_since(since).unwrap(),
                store.usage(since, None).unwrap(),
                store.usage(since, Some("k2")).unwrap(),
            )
        };
        let before: Vec<_> = [0, day(1, 0), day(2, 0)].map(report).into();
        // The first two days rolled up: the figures are the same from every day on.
        assert_eq!(store.roll_up_ledger(day(2, 0)).unwrap(), 2 * 16);
        let after: Vec<_> = [0, day(1, 0), day(2, 0)].map(report).into();
        assert_eq!(before, after);
        assert_eq!(before[0].0.1, vec![("research".to_owned(), 3 * 510)]);
        let conn = store.conn.lock().unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        assert_eq!(left, 16, "only the last day's rows");
        // Rows written late for a rolled-up day join its totals at the next roll-up.
        store
            .append_ledger(&[row(Some("k1"), day(0, 99), Some(1_000), "miss")])
            .unwrap();
        assert_eq!(store.roll_up_ledger(day(2, 0)).unwrap(), 1);
        let (keys, _) = store.spend_since(0).unwrap();
        assert_eq!(
            keys,
            vec![("k1".to_owned(), 3 * 510 + 1_000), ("k2".to_owned(), 9)]
        );
        assert_eq!(
            store.roll_up_ledger(day(2, 0)).unwrap(),
            0,
            "nothing left to roll"
        );
    }

    #[test]
    fn each_key_is_stamped_with_its_last_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["k1", "k2", "k3"] {
            store
                .insert_key(&crate::keys::KeyRow {
                    id: id.to_owned(),
                    label: id.to_owned(),
                    prefix: "rp-".to_owned(),
                    hash: format!("hash-{id}"),
                    team: None,
                    rpm: None,
                    tpm: None,
                    daily_usd: None,
                    monthly_usd: None,
                    models: None,
                    expires_ms: None,
                    created_ms: 1,
                    last_used_ms: None,
                    revoked_ms: None,
                })
                .unwrap();
        }
        store
            .append_ledger(&[
                row(Some("k1"), 30, None, "miss"),
                row(Some("k1"), 10, None, "miss"),
                row(Some("k2"), 20, None, "miss"),
                row(None, 40, None, "miss"),
            ])
            .unwrap();
        // A later batch never moves a stamp back.
        store
            .append_ledger(&[row(Some("k2"), 5, None, "miss")])
            .unwrap();
        let used: Vec<(String, Option<i64>)> = store
            .keys()
            .unwrap()
            .into_iter()
            .map(|k| (k.id, k.last_used_ms))
            .collect();
        assert!(used.contains(&("k1".to_owned(), Some(30))), "{used:?}");
        assert!(used.contains(&("k2".to_owned(), Some(20))), "{used:?}");
        assert!(used.contains(&("k3".to_owned(), None)), "{used:?}");
    }

    #[test]
    fn ledger_sums_by_day_key_and_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day = 86_400_000;
        store
            .append_ledger(&[
                row(Some("k1"), day, Some(100), "miss"),
                row(Some("k1"), day + 1, Some(0), "hit"),
                row(Some("k2"), day + 2, None, "miss"),
                row(Some("k1"), 2 * day, Some(50), "miss"),
            ])
            .unwrap();
        let usage = store.usage(0, Some("k1")).unwrap();
        assert_eq!(usage.len(), 2);
        assert_eq!(usage[0].day, "1970-01-02");
        assert_eq!(usage[0].requests, 2);
        assert_eq!(usage[0].cache_hits, 1);
        assert_eq!(usage[0].cost_nano_usd, 100);
        assert_eq!(usage[0].saved_nano_usd, 7);
        let all = store.usage(0, None).unwrap();
        assert_eq!(all.iter().map(|u| u.requests).sum::<i64>(), 4);
        assert_eq!(
            all.iter()
                .find(|u| u.key_id.as_deref() == Some("k2"))
                .unwrap()
                .unpriced_requests,
            1
        );
        let (by_key, _) = store.spend_since(day + day / 2).unwrap();
        assert_eq!(by_key, vec![("k1".to_owned(), 50)]);
    }
}
