//! `[aliases]` and `[routing]`: which targets serve a public model name, in what order, and how
//! hard the gateway tries before giving up.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::{RawAlias, RawRouting};
use super::{ConfigError, TargetConfig};

/// How an alias orders its targets for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In the order written: the first is used while it is healthy, the rest are the fallback
    /// chain.
    Priority,
    /// At random in proportion to the weights (each request draws a full order, so failover
    /// also follows the weights).
    Weighted,
    /// The target with the lowest moving average of time to first byte, with some exploration
    /// so a target that was slow once gets measured again.
    LeastLatency,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least-latency",
        }
    }
}

/// One target behind an alias.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasMember {
    /// The target's name.
    pub target: String,
    /// The model asked of that target; the alias's own name when unset.
    pub model: Option<String>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasConfig {
    pub name: String,
    pub strategy: Strategy,
    pub members: Vec<AliasMember>,
}

/// Retries, deadlines and the circuit breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// Upstream calls per request at most, the first included.
    pub max_attempts: u32,
    /// A request's whole time budget (for streams: until the first content reaches the client).
    pub deadline: Duration,
    /// Backoff before retrying the same target: full jitter over `initial * 2^n`, capped.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured; a target asking for more is skipped for that long.
    pub retry_after_max: Duration,
    pub breaker: BreakerConfig,
    /// Share of least-latency picks that try another target first.
    pub exploration: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// Error ratio over the last `window` calls that opens it too.
    pub error_ratio: f64,
    pub window: u32,
    /// How long an open breaker keeps its target out of rotation before one probe decides.
    pub cooldown: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            deadline: Duration::from_secs(600),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            retry_after_max: Duration::from_secs(30),
            breaker: BreakerConfig {
                failures: 5,
                error_ratio: 0.5,
                window: 20,
                cooldown: Duration::from_secs(30),
            },
            exploration: 0.1,
        }
    }
}

pub(super) fn validate_routing(raw: &RawRouting) -> Result<RoutingConfig, ConfigError> {
    let d = RoutingConfig::default();
    let ms = |key: &str, v: Option<u64>, default: Duration, min: u64| match v {
        None => Ok(default),
        Some(v) if v < min => Err(ConfigError::new(
            format!("routing.{key}"),
            format!("must be at least {min} ms"),
        )),
        Some(v) => Ok(Duration::from_millis(v)),
    };
    let max_attempts = match raw.max_attempts {
        None => d.max_attempts,
        Some(n @ 1..=20) => n,
        Some(_) => {
            return Err(ConfigError::new(
                "routing.max_attempts",
                "must be between 1 and 20",
            ));
        }
    };
    let ratio = |key: &str, v: Option<f64>, default: f64, max: f64| match v {
        None => Ok(default),
        Some(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(x),
        Some(_) => Err(ConfigError::new(
            format!("routing.{key}"),
            format!("must be a number from 0 to {max}"),
        )),
    };
    let breaker = BreakerConfig {
        failures: match raw.breaker_failures {
            None => d.breaker.failures,
            Some(0) => {
                return Err(ConfigError::new(
                    "routing.breaker_failures",
                    "must be at least 1",
                ));
            }
            Some(n) => n,
        },
        error_ratio: ratio(
            "breaker_error_ratio",
            raw.breaker_error_ratio,
            d.breaker.error_ratio,
            1.0,
        )?,
        window: match raw.breaker_window {
            None => d.breaker.window,
            Some(n @ 2..=64) => n,
            Some(_) => {
                return Err(ConfigError::new(
                    "routing.breaker_window",
                    "must be between 2 and 64 calls",
                ));
            }
        },
        cooldown: ms(
            "breaker_cooldown_ms",
            raw.breaker_cooldown_ms,
            d.breaker.cooldown,
            1,
        )?,
    };
    let backoff_initial = ms(
        "backoff_initial_ms",
        raw.backoff_initial_ms,
        d.backoff_initial,
        0,
    )?;
    let backoff_max = ms("backoff_max_ms", raw.backoff_max_ms, d.backoff_max, 0)?;
    if backoff_max < backoff_initial {
        return Err(ConfigError::new(
            "routing.backoff_max_ms",
            "must not be below backoff_initial_ms",
        ));
    }
    Ok(RoutingConfig {
        max_attempts,
        deadline: ms("deadline_ms", raw.deadline_ms, d.deadline, 1)?,
        backoff_initial,
        backoff_max,
        retry_after_max: ms(
            "retry_after_max_ms",
            raw.retry_after_max_ms,
            d.retry_after_max,
            0,
        )?,
        breaker,
        exploration: ratio("exploration", raw.exploration, d.exploration, 1.0)?,
    })
}

pub(super) fn validate_aliases(
    raw: &BTreeMap<String, RawAlias>,
    targets: &[TargetConfig],
) -> Result<Vec<AliasConfig>, ConfigError> {
    let mut aliases = Vec::with_capacity(raw.len());
    for (name, alias) in raw {
        let at = |key: &str| format!("aliases.{name:?}.{key}");
        if name.trim().is_empty() {
            return Err(ConfigError::new("aliases", "an alias needs a name"));
        }
        let strategy = match alias.strategy.as_deref() {
            None | Some("priority") | Some("fallback") => Strategy::Priority,
            Some("weighted") => Strategy::Weighted,
            Some("least-latency") | Some("least_latency") => Strategy::LeastLatency,
            Some(other) => {
                return Err(ConfigError::new(
                    at("strategy"),
                    format!(
                        "{other:?} is not one of \"priority\", \"weighted\", \"least-latency\""
                    ),
                ));
            }
        };
        if alias.targets.is_empty() {
            return Err(ConfigError::new(
                at("targets"),
                "an alias needs at least one target",
            ));
        }
        let mut members = Vec::with_capacity(alias.targets.len());
        for (i, m) in alias.targets.iter().enumerate() {
            let at = |key: &str| format!("aliases.{name:?}.targets[{i}].{key}");
            if !targets.iter().any(|t| t.name == m.target) {
                let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
                return Err(ConfigError::new(
                    at("target"),
                    format!(
                        "no target is named {:?} (targets: {})",
                        m.target,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            let weight = m.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(ConfigError::new(at("weight"), "must be a number above 0"));
            }
            if m.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
                return Err(ConfigError::new(at("model"), "must name a model"));
            }
            members.push(AliasMember {
                target: m.target.clone(),
                model: m.model.clone(),
                weight,
            });
        }
        aliases.push(AliasConfig {
            name: name.clone(),
            strategy,
            members,
        });
    }
    Ok(aliases)
}
