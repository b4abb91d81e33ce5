//! Choosing the upstream targets for a model, in the order a request tries them.
//!
//! A model name resolves, first match wins, through: an alias (`[aliases."NAME"]`, ordered by
//! its strategy); a `target/model` or `provider/model` prefix; the targets whose model patterns
//! name it (configured `models`, or the provider's defaults: `claude-*` for Anthropic,
//! `gemini-*` for Gemini); and last the catch-all targets (OpenAI-compatible targets without a
//! model list). Targets whose breaker is open go to the end of the list: they are used only
//! when nothing else is left.

mod health;

use std::collections::HashMap;
use std::time::Instant;

use crate::config::{AliasConfig, Strategy};
use crate::state::Target;
pub use health::Health;

/// One place a request may be sent: a target and the model to ask it for.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub target: &'a Target,
    /// The upstream model when it differs from the request's `model`.
    pub model: Option<&'a str>,
}

#[derive(Debug)]
struct Member {
    target: usize,
    model: Option<String>,
    weight: f64,
}

#[derive(Debug)]
struct Alias {
    strategy: Strategy,
    members: Vec<Member>,
}

/// The targets and the rules that pick among them, built once from the configuration.
#[derive(Debug)]
pub struct Router {
    targets: Vec<Target>,
    aliases: HashMap<String, Alias>,
    exploration: f64,
}

impl Router {
    pub fn new(targets: Vec<Target>, aliases: &[AliasConfig], exploration: f64) -> Self {
        let aliases = aliases
            .iter()
            .map(|a| {
                let members = a
                    .members
                    .iter()
                    .filter_map(|m| {
                        let target = targets.iter().position(|t| t.name == m.target)?;
                        Some(Member {
                            target,
                            model: m.model.clone(),
                            weight: m.weight,
                        })
                    })
                    .collect();
                (
                    a.name.clone(),
                    Alias {
                        strategy: a.strategy,
                        members,
                    },
                )
            })
            .collect();
        Self {
            targets,
            aliases,
            exploration,
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The public names of the aliases, sorted.
    pub fn alias_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.aliases.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The routes for `model`, in the order to try them; empty when nothing serves it.
    pub fn plan<'a>(&'a self, model: &'a str, now: Instant) -> Vec<Route<'a>> {
        let mut routes = self.resolve(model);
        // Stable: the strategy's order among the available targets, then the ones cooling down,
        // soonest available first.
        routes.sort_by_key(|r| {
            let h = &r.target.health;
            if h.available(now) {
                (0, None)
            } else {
                (1, h.available_at())
            }
        });
        routes
    }

    fn resolve<'a>(&'a self, model: &'a str) -> Vec<Route<'a>> {
        if let Some(alias) = self.aliases.get(model) {
            return self.order(alias);
        }
        if let Some((prefix, rest)) = model.split_once('/')
            && !rest.is_empty()
        {
            let by_name: Vec<Route<'a>> = self
                .targets
                .iter()
                .filter(|t| t.name == prefix)
                .map(|target| Route {
                    target,
                    model: Some(rest),
                })
                .collect();
            if !by_name.is_empty() {
                return by_name;
            }
            let by_kind: Vec<Route<'a>> = self
                .targets
                .iter()
                .filter(|t| t.kind.as_str() == prefix)
                .map(|target| Route {
                    target,
                    model: Some(rest),
                })
                .collect();
            if !by_kind.is_empty() {
                return by_kind;
            }
            // Otherwise the slash is part of the model's own name (`meta-llama/...`).
        }
        let routes = |specific: bool| -> Vec<Route<'a>> {
            self.targets
                .iter()
                .filter(|t| {
                    t.patterns()
                        .any(|p| (p != "*") == specific && matches_pattern(p, model))
                })
                .map(|target| Route {
                    target,
                    model: None,
                })
                .collect()
        };
        let specific = routes(true);
        if specific.is_empty() {
            routes(false)
        } else {
            specific
        }
    }

    fn order<'a>(&'a self, alias: &'a Alias) -> Vec<Route<'a>> {
        let route = |m: &'a Member| -> Option<Route<'a>> {
            Some(Route {
                target: self.targets.get(m.target)?,
                model: m.model.as_deref(),
            })
        };
        let members: Vec<&'a Member> = match alias.strategy {
            Strategy::Priority => alias.members.iter().collect(),
            Strategy::Weighted => {
                // Efraimidis–Spirakis: sorting by u^(1/w) draws a whole order without
                // replacement, each position in proportion to the weights.
                let mut keyed: Vec<(f64, &Member)> = alias
                    .members
                    .iter()
                    .map(|m| (fastrand::f64().powf(1.0 / m.weight), m))
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
                keyed.into_iter().map(|(_, m)| m).collect()
            }
            Strategy::LeastLatency => {
                let ttfb = |m: &Member| {
                    self.targets
                        .get(m.target)
                        .and_then(|t| t.health.ttfb_ms())
                        .unwrap_or(0.0)
                };
                // Unmeasured targets (0) come first, so each gets measured.
                let mut sorted: Vec<&Member> = alias.members.iter().collect();
                sorted.sort_by(|a, b| ttfb(a).total_cmp(&ttfb(b)));
                if sorted.len() > 1 && fastrand::f64() < self.exploration {
                    let pick = fastrand::usize(1..sorted.len());
                    let explored = sorted.remove(pick);
                    sorted.insert(0, explored);
                }
                sorted
            }
        };
        members.into_iter().filter_map(route).collect()
    }
}

/// One target as `/admin/providers` and `reprise provider list` show it.
#[derive(Debug, serde::Serialize)]
pub struct TargetReport {
    pub name: String,
    pub provider: &'static str,
    pub models: Vec<String>,
    pub state: &'static str,
    /// Moving average of time to first byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    /// Seconds until a cooling-down target is tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<f64>,
    /// Share of failures among its recent calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
}

#[derive(Debug, serde::Serialize)]
pub struct AliasReport {
    pub name: String,
    pub strategy: &'static str,
    pub targets: Vec<serde_json::Value>,
}

/// The result of a live probe of one target (its model list: cheap, no tokens spent).
#[derive(Debug, serde::Serialize)]
pub struct ProbeReport {
    pub name: String,
    pub provider: &'static str,
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Router {
    pub fn report(&self, now: Instant) -> (Vec<TargetReport>, Vec<AliasReport>) {
        let targets = self
            .targets
            .iter()
            .map(|t| TargetReport {
                name: t.name.clone(),
                provider: t.kind.as_str(),
                models: t.patterns().map(str::to_owned).collect(),
                state: t.health.state(now).as_str(),
                ttfb_ms: t.health.ttfb_ms().map(|ms| (ms * 1000.0).round() / 1000.0),
                retry_in_secs: t
                    .health
                    .available_at()
                    .and_then(|at| at.checked_duration_since(now))
                    .filter(|d| !d.is_zero())
                    .map(|d| (d.as_secs_f64() * 10.0).ceil() / 10.0),
                error_rate: t.health.error_ratio(),
            })
            .collect();
        let mut aliases: Vec<AliasReport> = self
            .aliases
            .iter()
            .map(|(name, alias)| AliasReport {
                name: name.clone(),
                strategy: alias.strategy.as_str(),
                targets: alias
                    .members
                    .iter()
                    .filter_map(|m| {
                        let target = self.targets.get(m.target)?;
                        Some(serde_json::json!({
                            "target": target.name,
                            "model": m.model.as_deref().unwrap_or(name),
                            "weight": m.weight,
                        }))
                    })
                    .collect(),
            })
            .collect();
        aliases.sort_by(|a, b| a.name.cmp(&b.name));
        (targets, aliases)
    }

    /// Probes every target at once.
    pub async fn probe(&self) -> Vec<ProbeReport> {
        futures_util::future::join_all(self.targets.iter().map(|t| async move {
            let started = Instant::now();
            let result = t.provider.list_models().await;
            let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
            match result {
                Ok(models) => ProbeReport {
                    name: t.name.clone(),
                    provider: t.kind.as_str(),
                    ok: true,
                    latency_ms,
                    models: Some(models.len()),
                    error: None,
                },
                Err(err) => ProbeReport {
                    name: t.name.clone(),
                    provider: t.kind.as_str(),
                    ok: false,
                    latency_ms,
                    models: None,
                    error: Some(match err.status() {
                        Some(status) => format!("HTTP {}", status.as_u16()),
                        None => err.label().to_owned(),
                    }),
                },
            }
        }))
        .await
    }
}

/// Glob match where `*` stands for any run of characters (possibly empty); nothing else is
/// special. Model names are short, so the simple backtracking walk is plenty.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{AliasMember, ProviderKind, RoutingConfig, TargetConfig};

    fn target(name: &str, kind: ProviderKind, models: &[&str]) -> Target {
        let config = TargetConfig {
            name: name.to_owned(),
            provider: kind,
            base_url: "http://127.0.0.1:1/v1".to_owned(),
            api_key_env: None,
            api_key: None,
            api_key_secret: None,
            headers: Vec::new(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            timeouts: reprise_providers::Timeouts::default(),
            http2_prior_knowledge: false,
            api_version: None,
        };
        Target::build(&config, RoutingConfig::default().breaker).unwrap()
    }

    fn alias(strategy: Strategy, members: &[(&str, f64)]) -> AliasConfig {
        AliasConfig {
            name: "smart".to_owned(),
            strategy,
            members: members
                .iter()
                .map(|(t, w)| AliasMember {
                    target: (*t).to_owned(),
                    model: None,
                    weight: *w,
                })
                .collect(),
        }
    }

    fn names(routes: &[Route<'_>]) -> Vec<String> {
        routes.iter().map(|r| r.target.name.clone()).collect()
    }

    #[test]
    fn weights_are_honoured_over_many_requests() {
        let targets = vec![
            target("a", ProviderKind::OpenAi, &[]),
            target("b", ProviderKind::OpenAi, &[]),
            target("c", ProviderKind::OpenAi, &[]),
        ];
        let router = Router::new(
            targets,
            &[alias(
                Strategy::Weighted,
                &[("a", 1.0), ("b", 3.0), ("c", 6.0)],
            )],
            0.0,
        );
        let now = Instant::now();
        let mut first = HashMap::new();
        const N: usize = 10_000;
        for _ in 0..N {
            let plan = router.plan("smart", now);
            assert_eq!(plan.len(), 3, "every target stays in the fallback order");
            *first.entry(plan[0].target.name.clone()).or_insert(0usize) += 1;
        }
        for (name, weight) in [("a", 0.1), ("b", 0.3), ("c", 0.6)] {
            let share = first[name] as f64 / N as f64;
            assert!(
                (share - weight).abs() < 0.02,
                "{name}: {share} of first picks, weight {weight}"
            );
        }
    }

    #[test]
    fn least_latency_prefers_the_fastest_and_explores() {
        let targets = vec![
            target("slow", ProviderKind::OpenAi, &[]),
            target("fast", ProviderKind::OpenAi, &[]),
        ];
        targets[0].health.success(Duration::from_millis(900));
        targets[1].health.success(Duration::from_millis(100));
        let members = [("slow", 1.0), ("fast", 1.0)];
        let greedy = Router::new(targets, &[alias(Strategy::LeastLatency, &members)], 0.0);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(names(&greedy.plan("smart", now)), ["fast", "slow"]);
        }

        let targets = vec![
            target("slow", ProviderKind::OpenAi, &[]),
            target("fast", ProviderKind::OpenAi, &[]),
        ];
        targets[0].health.success(Duration::from_millis(900));
        targets[1].health.success(Duration::from_millis(100));
        let exploring = Router::new(targets, &[alias(Strategy::LeastLatency, &members)], 0.2);
        let explored = (0..5_000)
            .filter(|_| exploring.plan("smart", now)[0].target.name == "slow")
            .count();
        let share = explored as f64 / 5_000.0;
        assert!((share - 0.2).abs() < 0.03, "explored {share}");
    }

    #[test]
    fn priority_keeps_the_written_order_and_open_breakers_go_last() {
        let targets = vec![
            target("a", ProviderKind::OpenAi, &[]),
            target("b", ProviderKind::OpenAi, &[]),
        ];
        let router = Router::new(
            targets,
            &[alias(Strategy::Priority, &[("a", 1.0), ("b", 1.0)])],
            0.0,
        );
        let now = Instant::now();
        assert_eq!(names(&router.plan("smart", now)), ["a", "b"]);
        for _ in 0..5 {
            router.targets()[0].health.failure(now);
        }
        assert_eq!(names(&router.plan("smart", now)), ["b", "a"]);
    }

    #[test]
    fn bare_names_route_by_pattern_and_specific_beats_catch_all() {
        let router = Router::new(
            vec![
                target("openai", ProviderKind::OpenAi, &[]),
                target("anthropic", ProviderKind::Anthropic, &[]),
                target("gemini", ProviderKind::Gemini, &[]),
                target("local", ProviderKind::OpenAi, &["llama-*"]),
            ],
            &[],
            0.0,
        );
        let now = Instant::now();
        assert_eq!(names(&router.plan("claude-sonnet-4-5", now)), ["anthropic"]);
        assert_eq!(names(&router.plan("gemini-2.5-pro", now)), ["gemini"]);
        assert_eq!(names(&router.plan("llama-3.1-8b", now)), ["local"]);
        assert_eq!(names(&router.plan("gpt-4o", now)), ["openai"]);
        let prefixed = router.plan("gemini/gemini-2.5-flash", now);
        assert_eq!(names(&prefixed), ["gemini"]);
        assert_eq!(prefixed[0].model, Some("gemini-2.5-flash"));
        let by_name = router.plan("local/qwen3", now);
        assert_eq!(names(&by_name), ["local"]);
        assert_eq!(by_name[0].model, Some("qwen3"));

        let no_catch_all = Router::new(
            vec![target("anthropic", ProviderKind::Anthropic, &[])],
            &[],
            0.0,
        );
        assert!(no_catch_all.plan("gpt-4o", now).is_empty());
    }

    #[test]
    fn glob_patterns() {
        assert!(matches_pattern("gpt-4o", "gpt-4o"));
        assert!(!matches_pattern("gpt-4o", "gpt-4o-mini"));
        assert!(matches_pattern("gpt-*", "gpt-4o-mini"));
        assert!(matches_pattern("gpt-*", "gpt-"));
        assert!(!matches_pattern("gpt-*", "claude-3"));
        assert!(matches_pattern("o*", "o3-mini"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("*-mini", "gpt-4o-mini"));
        assert!(!matches_pattern("*-mini", "gpt-4o"));
        assert!(matches_pattern("a*b*c", "a-x-b-y-c"));
        assert!(!matches_pattern("a*b*c", "a-x-c-y-b"));
        assert!(!matches_pattern("ab*ba", "aba"));
    }
}
