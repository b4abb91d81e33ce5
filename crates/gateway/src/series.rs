//! The last hour in five-second slots, for the dashboard's live charts: requests, cache hits,
//! errors, and latency and gateway-overhead distributions (log-spaced buckets from 10 µs, so a
//! slot's p50 and p99 cost a few hundred bytes, not a sample list).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SLOT: Duration = Duration::from_secs(5);
pub const SLOTS: usize = 720;
/// Latency buckets: 10 µs × 1.5^i, up to about 3 minutes.
const BUCKETS: usize = 42;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Which 5-second slot since the epoch this is (stale slots are reset when reused).
    epoch: u64,
    requests: u32,
    hits: u32,
    errors: u32,
    latency: [u32; BUCKETS],
    overhead: [u32; BUCKETS],
}

impl Slot {
    const EMPTY: Slot = Slot {
        epoch: 0,
        requests: 0,
        hits: 0,
        errors: 0,
        latency: [0; BUCKETS],
        overhead: [0; BUCKETS],
    };
}

fn bucket(d: Duration) -> usize {
    let micros = d.as_secs_f64() * 1e6;
    if micros <= 10.0 {
        return 0;
    }
    ((micros / 10.0).ln() / 1.5f64.ln())
        .ceil()
        .min((BUCKETS - 1) as f64) as usize
}

/// The upper bound of a bucket, in milliseconds.
fn bucket_ms(i: usize) -> f64 {
    0.01 * 1.5f64.powi(i as i32)
}

fn quantile(buckets: &[u32; BUCKETS], q: f64) -> Option<f64> {
    let total: u32 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * f64::from(total)).ceil().max(1.0) as u32;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_ms(i));
        }
    }
    Some(bucket_ms(BUCKETS - 1))
}

/// One point of a chart: slot start (Unix seconds) and its figures.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Point {
    pub t: u64,
    pub rps: f64,
    pub hit_rate: Option<f64>,
    pub errors: u32,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p99_ms: Option<f64>,
}

#[derive(Debug)]
pub struct Series {
    slots: Mutex<Box<[Slot; SLOTS]>>,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            slots: Mutex::new(Box::new([Slot::EMPTY; SLOTS])),
        }
    }
}

fn slot_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / SLOT.as_secs())
        .unwrap_or(0)
}

impl Series {
    pub fn record(&self, total: Duration, overhead: Duration, hit: bool, error: bool) {
        self.record_at(slot_now(), total, overhead, hit, error);
    }

    fn record_at(&self, epoch: u64, total: Duration, overhead: Duration, hit: bool, error: bool) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                ..Slot::EMPTY
            };
        }
        slot.requests += 1;
        slot.hits += u32::from(hit);
        slot.errors += u32::from(error);
        slot.latency[bucket(total)] += 1;
        slot.overhead[bucket(overhead)] += 1;
    }

    /// The last hour, oldest first, one point per slot (empty slots included).
    pub fn last_hour(&self) -> Vec<Point> {
        self.last_hour_at(slot_now())
    }

    fn last_hour_at(&self, now: u64) -> Vec<Point> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        (0..SLOTS as u64)
            .rev()
            .map(|back| {
                let epoch = now.saturating_sub(back);
                let slot = slots[(epoch % SLOTS as u64) as usize];
                let slot = if slot.epoch == epoch {
                    slot
                } else {
                    Slot::EMPTY
                };
                Point {
                    t: epoch * SLOT.as_secs(),
                    rps: f64::from(slot.requests) / SLOT.as_secs_f64(),
                    hit_rate: (slot.requests > 0)
                        .then(|| f64::from(slot.hits) / f64::from(slot.requests)),
                    errors: slot.errors,
                    p50_ms: quantile(&slot.latency, 0.5),
                    p99_ms: quantile(&slot.latency, 0.99),
                    overhead_p50_ms: quantile(&slot.overhead, 0.5),
                    overhead_p99_ms: quantile(&slot.overhead, 0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_aggregate_and_age_out() {
        let s = Series::default();
        for i in 0..100 {
            let total = Duration::from_millis(if i < 98 { 2 } else { 400 });
            s.record_at(1_000, total, Duration::from_micros(50), i % 4 == 0, i == 0);
        }
        let points = s.last_hour_at(1_000);
        assert_eq!(points.len(), SLOTS);
        let last = points[SLOTS - 1];
        assert_eq!(last.t, 5_000);
        assert!((last.rps - 20.0).abs() < 1e-9);
        assert_eq!(last.hit_rate, Some(0.25));
        assert_eq!(last.errors, 1);
        let p50 = last.p50_ms.unwrap();
        assert!((2.0..3.0).contains(&p50), "{p50}");
        assert!(last.p99_ms.unwrap() >= 400.0);
        let over = last.overhead_p50_ms.unwrap();
        assert!((0.05..0.075).contains(&over), "{over}");
        // An hour later the slot is reused and starts empty.
        let later = s.last_hour_at(1_000 + SLOTS as u64);
        assert!(later.iter().all(|p| p.rps == 0.0));
    }
}
