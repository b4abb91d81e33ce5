//! Rate limits and budgets per key (and team).
//!
//! Rate limits are token buckets of one minute whose tokens come back exactly a minute after
//! they were spent (a sliding window): a key with `rpm = 100` gets at most 100 requests in any
//! 60 seconds, exactly, however many arrive at once. Tokens per minute are estimated before the
//! call (prompt characters / 4 + `max_tokens`) and corrected with the real usage after it.
//!
//! Budgets are daily and monthly USD walls (UTC calendar days and months) over the spend the
//! ledger records; spend is kept in memory, loaded from the store at start.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::GatewayError;
use crate::auth::Key;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Windows {
    requests: VecDeque<Instant>,
    /// (when, ticket, tokens)
    tokens: VecDeque<(Instant, u64, u64)>,
    token_sum: u64,
}

impl Windows {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|t| now >= *t + WINDOW) {
            self.requests.pop_front();
        }
        while let Some(&(t, _, n)) = self.tokens.front() {
            if now < t + WINDOW {
                break;
            }
            self.token_sum -= n;
            self.tokens.pop_front();
        }
    }
}

/// The tokens a request reserved, to correct with its real usage.
#[derive(Debug, Clone)]
pub struct TokenTicket {
    key_id: String,
    ticket: u64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, Windows>>,
    next_ticket: std::sync::atomic::AtomicU64,
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Windows>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request against the key's requests per minute (cache hits included).
    pub fn admit_request(&self, key: &Key, now: Instant) -> Result<(), GatewayError> {
        let Some(rpm) = key.rpm else {
            return Ok(());
        };
        let mut all = self.lock();
        let w = all.entry(key.id.clone()).or_default();
        w.expire(now);
        if w.requests.len() as u64 >= rpm {
            let oldest = w.requests.front().copied().unwrap_or(now);
            return Err(GatewayError::RateLimited {
                code: "rpm_limit_exceeded",
                message: format!("This key is limited to {rpm} requests per minute."),
                retry_after: (oldest + WINDOW).saturating_duration_since(now),
            });
        }
        w.requests.push_back(now);
        Ok(())
    }

    /// Requests and tokens a key used in the last minute.
    pub fn usage(&self, key_id: &str, now: Instant) -> (u64, u64) {
        let mut all = self.lock();
        match all.get_mut(key_id) {
            Some(w) => {
                w.expire(now);
                (w.requests.len() as u64, w.token_sum)
            }
            None => (0, 0),
        }
    }

    /// Reserves `estimate` tokens against the key's tokens per minute (upstream calls only).
    pub fn admit_tokens(
        &self,
        key: &Key,
        estimate: u64,
        now: Instant,
    ) -> Result<Option<TokenTicket>, GatewayError> {
        let Some(tpm) = key.tpm else {
            return Ok(None);
        };
        let mut all = self.lock();
        let w = all.entry(key.id.clone()).or_default();
        w.expire(now);
        if w.token_sum + estimate > tpm && !w.tokens.is_empty() {
            // When enough of the window's tokens come back for this request to fit.
            let mut freed = 0;
            let mut at = now + WINDOW;
            for &(t, _, n) in &w.tokens {
                freed += n;
                if w.token_sum - freed + estimate <= tpm {
                    at = t + WINDOW;
                    break;
                }
            }
            return Err(GatewayError::RateLimited {
                code: "tpm_limit_exceeded",
                message: format!(
                    "This key is limited to {tpm} tokens per minute (this request is estimated \
                     at {estimate})."
                ),
                retry_after: at.saturating_duration_since(now),
            });
        }
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        w.tokens.push_back((now, ticket, estimate));
        w.token_sum += estimate;
        Ok(Some(TokenTicket {
            key_id: key.id.clone(),
            ticket,
        }))
    }

    /// Replaces a reservation's estimate with the tokens really used.
    pub fn correct(&self, ticket: &TokenTicket, actual: u64) {
        let mut all = self.lock();
        let Some(w) = all.get_mut(&ticket.key_id) else {
            return;
        };
        if let Some(entry) = w.tokens.iter_mut().find(|e| e.1 == ticket.ticket) {
            w.token_sum = w.token_sum - entry.2 + actual;
            entry.2 = actual;
        }
    }
}

/// The tokens a request is expected to use before it is sent: prompt characters / 4 (a
/// tokenizer-free estimate) plus the completion limit it asks for.
pub fn estimate_tokens(raw: &[u8], max_tokens: Option<u64>) -> u64 {
    (raw.len() as u64).div_ceil(4) + max_tokens.unwrap_or(0)
}

/// Days since the Unix epoch and (year, month) of a UTC time, and when the next day and month
/// begin, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub day: i64,
    pub month: (i64, u32),
    pub day_start_ms: i64,
    pub next_day_ms: i64,
    pub month_start_ms: i64,
    pub next_month_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Calendar {
    pub fn at(now_ms: i64) -> Self {
        let day = now_ms.div_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(day);
        let month_start = day - i64::from(d) + 1;
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Self {
            day,
            month: (y, m),
            day_start_ms: day * DAY_MS,
            next_day_ms: (day + 1) * DAY_MS,
            month_start_ms: month_start * DAY_MS,
            next_month_ms: days_from_civil(ny, nm, 1) * DAY_MS,
        }
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Spend in nano-USD per key and team, for today and this month.
#[derive(Debug, Default)]
pub struct Spend {
    inner: Mutex<SpendState>,
}

#[derive(Debug, Default)]
struct SpendState {
    day: i64,
    month: (i64, u32),
    today: HashMap<String, i64>,
    this_month: HashMap<String, i64>,
}

/// A budget holder: `key:ID` or `team:NAME`.
pub fn holder_key(id: &str) -> String {
    format!("key:{id}")
}

pub fn holder_team(name: &str) -> String {
    format!("team:{name}")
}

impl Spend {
    /// Spend loaded from the ledger: (holder, nano-USD) since the start of today and of this
    /// month.
    pub fn new(now_ms: i64, today: Vec<(String, i64)>, month: Vec<(String, i64)>) -> Self {
        let cal = Calendar::at(now_ms);
        Self {
            inner: Mutex::new(SpendState {
                day: cal.day,
                month: cal.month,
                today: today.into_iter().collect(),
                this_month: month.into_iter().collect(),
            }),
        }
    }

    fn lock(&self, now_ms: i64) -> std::sync::MutexGuard<'_, SpendState> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let cal = Calendar::at(now_ms);
        if cal.day != s.day {
            s.day = cal.day;
            s.today.clear();
        }
        if cal.month != s.month {
            s.month = cal.month;
            s.this_month.clear();
        }
        s
    }

    pub fn add(&self, holders: &[String], nano_usd: i64, now_ms: i64) {
        if nano_usd == 0 {
            return;
        }
        let mut s = self.lock(now_ms);
        for h in holders {
            *s.today.entry(h.clone()).or_default() += nano_usd;
            *s.this_month.entry(h.clone()).or_default() += nano_usd;
        }
    }

    /// Refuses when `holder` has spent its daily or monthly budget.
    pub fn check(
        &self,
        holder: &str,
        what: &str,
        daily_usd: Option<f64>,
        monthly_usd: Option<f64>,
        now_ms: i64,
    ) -> Result<(), GatewayError> {
        let s = self.lock(now_ms);
        let cal = Calendar::at(now_ms);
        let spent = |map: &HashMap<String, i64>| map.get(holder).copied().unwrap_or(0);
        for (limit, spent, code, period, next) in [
            (
                daily_usd,
                spent(&s.today),
                "daily_budget_exceeded",
                "daily",
                cal.next_day_ms,
            ),
            (
                monthly_usd,
                spent(&s.this_month),
                "monthly_budget_exceeded",
                "monthly",
                cal.next_month_ms,
            ),
        ] {
            if let Some(limit) = limit
                && spent as f64 >= limit * 1e9
            {
                return Err(GatewayError::BudgetExceeded {
                    code,
                    message: format!(
                        "The {period} budget of ${limit:.2} for {what} is spent; it resets at \
                         the start of the next UTC {}.",
                        if period == "daily" { "day" } else { "month" }
                    ),
                    retry_after: Duration::from_millis(u64::try_from(next - now_ms).unwrap_or(0)),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rpm: Option<u64>, tpm: Option<u64>) -> Key {
        Key::for_tests("k1", rpm, tpm)
    }

    #[test]
    fn requests_per_minute_slide() {
        let limiter = Limiter::default();
        let k = key(Some(3), None);
        let t0 = Instant::now();
        for i in 0..3 {
            limiter
                .admit_request(&k, t0 + Duration::from_secs(i))
                .unwrap();
        }
        let err = limiter
            .admit_request(&k, t0 + Duration::from_secs(10))
            .unwrap_err();
        let GatewayError::RateLimited {
            code, retry_after, ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(code, "rpm_limit_exceeded");
        assert_eq!(retry_after, Duration::from_secs(50));
        assert!(
            limiter.admit_request(&k, t0 + WINDOW).is_ok(),
            "the first came back"
        );
    }

    #[test]
    fn tokens_per_minute_are_corrected_with_real_usage() {
        let limiter = Limiter::default();
        let k = key(None, Some(1_000));
        let t0 = Instant::now();
        let ticket = limiter.admit_tokens(&k, 900, t0).unwrap().unwrap();
        assert!(limiter.admit_tokens(&k, 200, t0).is_err());
        limiter.correct(&ticket, 100);
        assert!(
            limiter.admit_tokens(&k, 200, t0).is_ok(),
            "the estimate was high"
        );
    }

    #[test]
    fn calendar_days_and_months() {
        // 2026-11-21T20:00:00Z
        let now = 1_795_291_200_000;
        let cal = Calendar::at(now);
        assert_eq!(cal.month, (2026, 11));
        assert_eq!(cal.month_start_ms, 1_793_491_200_000, "2026-11-01");
        assert_eq!(cal.next_month_ms, 1_796_083_200_000, "2026-12-01");
        assert_eq!(cal.next_day_ms, 1_795_305_600_000, "2026-11-22");
        let dec = Calendar::at(1_796_083_200_000 + 5);
        assert_eq!(dec.month, (2026, 12));
        assert_eq!(
            Calendar::at(1_798_761_600_000).month,
            (2027, 1),
            "2027-01-01"
        );
    }

    #[test]
    fn budgets_are_walls_until_the_window_resets() {
        let now = 1_795_291_200_000;
        let spend = Spend::new(now, vec![], vec![("key:k1".into(), 4_000_000_000)]);
        assert!(
            spend
                .check("key:k1", "this key", Some(1.0), Some(5.0), now)
                .is_ok()
        );
        spend.add(&["key:k1".into()], 1_000_000_000, now);
        let err = spend
            .check("key:k1", "this key", Some(1.0), Some(10.0), now)
            .unwrap_err();
        assert!(matches!(
            err,
            GatewayError::BudgetExceeded {
                code: "daily_budget_exceeded",
                ..
            }
        ));
        assert!(matches!(
            spend.check("key:k1", "this key", None, Some(5.0), now),
            Err(GatewayError::BudgetExceeded {
                code: "monthly_budget_exceeded",
                ..
            })
        ));
        // The next day the daily wall is gone; the monthly one stays.
        let tomorrow = now + DAY_MS;
        assert!(
            spend
                .check("key:k1", "this key", Some(1.0), None, tomorrow)
                .is_ok()
        );
        assert!(
            spend
                .check("key:k1", "this key", None, Some(5.0), tomorrow)
                .is_err()
        );
    }
}
