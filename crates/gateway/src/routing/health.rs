//! A target's health: a circuit breaker (consecutive failures or an error ratio over a window
//! open it; after a cool-down one probe decides) and a moving average of time to first byte for
//! the least-latency strategy.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

/// What the dashboard and `/admin/providers` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Healthy,
    /// Skipped until the cool-down ends (breaker open, or the provider asked for a pause with
    /// `Retry-After`).
    CoolingDown,
    /// The cool-down is over; the next request is the probe that closes or reopens it.
    Probing,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Healthy => "healthy",
            BreakerState::CoolingDown => "cooling_down",
            BreakerState::Probing => "probing",
        }
    }
}

#[derive(Debug)]
struct State {
    consecutive_failures: u32,
    /// The last `window` outcomes, newest in bit 0 (1 = failure), and how many are recorded.
    recent: u64,
    recorded: u32,
    /// Open breaker: skipped until then.
    open_until: Option<Instant>,
    /// The provider asked for a pause (`Retry-After`); not a failure of health.
    paused_until: Option<Instant>,
    /// When the probe in flight after the cool-down started. A probe whose request was
    /// abandoned (client gone) never reports: after another cool-down it no longer blocks.
    probing: Option<Instant>,
    /// Moving average of time to first byte, in milliseconds.
    ttfb_ms: Option<f64>,
}

#[derive(Debug)]
pub struct Health {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Weight of the newest sample in the moving average.
const EWMA_ALPHA: f64 = 0.3;

impl Health {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                consecutive_failures: 0,
                recent: 0,
                recorded: 0,
                open_until: None,
                paused_until: None,
                probing: None,
                ttfb_ms: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let s = self.lock();
        if s.paused_until.is_some_and(|t| now < t) || s.open_until.is_some_and(|t| now < t) {
            BreakerState::CoolingDown
        } else if s.open_until.is_some() {
            BreakerState::Probing
        } else {
            BreakerState::Healthy
        }
    }

    /// Whether a request should use this target now (a target that is not available is still
    /// used when nothing else is left).
    pub fn available(&self, now: Instant) -> bool {
        let s = self.lock();
        if s.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        match s.open_until {
            None => true,
            Some(until) => {
                now >= until
                    && s.probing
                        .is_none_or(|started| now >= started + self.config.cooldown)
            }
        }
    }

    /// When the target becomes available again, if it is cooling down.
    pub fn available_at(&self) -> Option<Instant> {
        let s = self.lock();
        match (s.open_until, s.paused_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// An attempt is about to use the target: after a cool-down the first one is the probe.
    pub fn begin(&self, now: Instant) {
        let mut s = self.lock();
        if s.open_until.is_some_and(|t| now >= t) {
            s.probing = Some(now);
        }
    }

    pub fn success(&self, ttfb: Duration) {
        let mut s = self.lock();
        s.consecutive_failures = 0;
        s.open_until = None;
        s.probing = None;
        self.push(&mut s, false);
        let ms = ttfb.as_secs_f64() * 1000.0;
        s.ttfb_ms = Some(match s.ttfb_ms {
            None => ms,
            Some(avg) => avg + EWMA_ALPHA * (ms - avg),
        });
    }

    /// A failure the target is to blame for. Opens the breaker after enough of them; a failed
    /// probe reopens it at once.
    pub fn failure(&self, now: Instant) {
        let mut s = self.lock();
        s.consecutive_failures += 1;
        self.push(&mut s, true);
        let window = u64::from(self.config.window);
        let mask = if window >= 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        let failures = (s.recent & mask).count_ones();
        let ratio_tripped = s.recorded >= self.config.window
            && f64::from(failures) / f64::from(self.config.window) >= self.config.error_ratio;
        if s.probing.is_some() || s.consecutive_failures >= self.config.failures || ratio_tripped {
            s.open_until = Some(now + self.config.cooldown);
            s.probing = None;
            // A fresh start after the cool-down: the window would trip again at once otherwise.
            s.recent = 0;
            s.recorded = 0;
        }
    }

    /// The provider asked for a pause (`Retry-After`, already capped).
    pub fn pause(&self, until: Instant) {
        let mut s = self.lock();
        if s.paused_until.is_none_or(|t| t < until) {
            s.paused_until = Some(until);
        }
    }

    /// The share of failures among the last calls (`None` before any).
    pub fn error_ratio(&self) -> Option<f64> {
        let s = self.lock();
        (s.recorded > 0).then(|| {
            let window = u64::from(s.recorded);
            let mask = if window >= 64 {
                u64::MAX
            } else {
                (1u64 << window) - 1
            };
            f64::from((s.recent & mask).count_ones()) / f64::from(s.recorded)
        })
    }

    pub fn ttfb_ms(&self) -> Option<f64> {
        self.lock().ttfb_ms
    }

    fn push(&self, s: &mut State, failed: bool) {
        s.recent = (s.recent << 1) | u64::from(failed);
        s.recorded = (s.recorded + 1).min(self.config.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(BreakerConfig {
            failures: 3,
            error_ratio: 0.5,
            window: 10,
            cooldown: Duration::from_secs(30),
        })
    }

    #[test]
    fn consecutive_failures_open_then_one_probe_decides() {
        let h = health();
        let t0 = Instant::now();
        for _ in 0..2 {
            h.failure(t0);
        }
        assert!(h.available(t0), "two failures are not enough");
        h.failure(t0);
        assert!(!h.available(t0));
        assert_eq!(h.state(t0), BreakerState::CoolingDown);
        let later = t0 + Duration::from_secs(31);
        assert_eq!(h.state(later), BreakerState::Probing);
        assert!(h.available(later));
        h.begin(later);
        assert!(!h.available(later), "only one probe at a time");
        assert!(
            h.available(later + Duration::from_secs(31)),
            "an abandoned probe does not block for ever"
        );
        h.failure(later);
        assert!(!h.available(later), "a failed probe reopens");
        assert!(h.available(later + Duration::from_secs(31)));
        h.begin(later + Duration::from_secs(31));
        h.success(Duration::from_millis(10));
        assert_eq!(h.state(later), BreakerState::Healthy);
    }

    #[test]
    fn an_error_ratio_opens_it_too() {
        let h = health();
        let now = Instant::now();
        // Alternating: never three in a row, but half of the last ten.
        for _ in 0..5 {
            h.failure(now);
            h.success(Duration::from_millis(5));
        }
        assert!(h.available(now), "the window is not full yet");
        h.failure(now);
        assert!(!h.available(now), "half of the last ten failed");
    }

    #[test]
    fn a_pause_is_not_a_failure() {
        let h = health();
        let now = Instant::now();
        h.pause(now + Duration::from_secs(2));
        assert!(!h.available(now));
        assert!(h.available(now + Duration::from_secs(3)));
        assert_eq!(h.state(now + Duration::from_secs(3)), BreakerState::Healthy);
    }

    #[test]
    fn latency_is_a_moving_average() {
        let h = health();
        h.success(Duration::from_millis(100));
        h.success(Duration::from_millis(200));
        let avg = h.ttfb_ms().unwrap();
        assert!((avg - 130.0).abs() < 1e-9, "{avg}");
    }
}
