//! `[[targets]]`: one upstream endpoint each, and the zero-config targets the providers' usual
//! environment variables define.

use std::time::Duration;

use reprise_providers::{Secret, Timeouts};

use super::raw::{RawConfig, RawTarget};
use super::{ConfigError, DEFAULT_OPENAI_BASE_URL, Env, ProviderKind, TargetConfig};

/// Zero-config start: each provider's usual environment variables define a target named after
/// it when the file has no target of that name: `OPENAI_API_KEY` (+ `OPENAI_BASE_URL`),
/// `ANTHROPIC_API_KEY` (+ `ANTHROPIC_BASE_URL`), `GEMINI_API_KEY` (+ `GEMINI_BASE_URL`),
/// `AZURE_OPENAI_API_KEY` + `AZURE_OPENAI_ENDPOINT` (+ `AZURE_OPENAI_API_VERSION`). A base URL
/// variable also overrides the base URL of a file target of that name.
pub(super) fn apply_provider_env(raw: &mut RawConfig, env: &dyn Env) {
    struct Zero {
        name: &'static str,
        key: &'static str,
        base_url: &'static str,
        default_base_url: Option<&'static str>,
    }
    let providers = [
        Zero {
            name: "openai",
            key: "OPENAI_API_KEY",
            base_url: "OPENAI_BASE_URL",
            default_base_url: Some(DEFAULT_OPENAI_BASE_URL),
        },
        Zero {
            name: "anthropic",
            key: "ANTHROPIC_API_KEY",
            base_url: "ANTHROPIC_BASE_URL",
            default_base_url: Some(reprise_providers::anthropic::DEFAULT_BASE_URL),
        },
        Zero {
            name: "gemini",
            key: "GEMINI_API_KEY",
            base_url: "GEMINI_BASE_URL",
            default_base_url: Some(reprise_providers::gemini::DEFAULT_BASE_URL),
        },
        Zero {
            name: "azure",
            key: "AZURE_OPENAI_API_KEY",
            base_url: "AZURE_OPENAI_ENDPOINT",
            // Azure has no default endpoint: both variables are needed.
            default_base_url: None,
        },
    ];
    for p in providers {
        let base_url = env.var(p.base_url);
        if let Some(existing) = raw.targets.iter_mut().find(|t| t.name == p.name) {
            if base_url.is_some() {
                existing.base_url = base_url;
            }
            continue;
        }
        let Some(base_url) = base_url.or(p.default_base_url.map(str::to_owned)) else {
            continue;
        };
        if env.var(p.key).is_some() {
            raw.targets.push(RawTarget {
                name: p.name.to_owned(),
                provider: Some(p.name.to_owned()),
                base_url: Some(base_url),
                api_key_env: Some(p.key.to_owned()),
                api_version: if p.name == "azure" {
                    env.var("AZURE_OPENAI_API_VERSION")
                } else {
                    None
                },
                ..RawTarget::default()
            });
        }
    }
}

pub(super) fn validate_target(
    i: usize,
    t: RawTarget,
    env: &dyn Env,
) -> Result<TargetConfig, ConfigError> {
    let at = |key: &str| format!("targets[{i}].{key}");
    if t.name.is_empty()
        || !t
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new(
            at("name"),
            format!(
                "{:?} must be non-empty ASCII letters, digits, '-', '_' or '.'",
                t.name
            ),
        ));
    }
    let kind = t.provider.as_deref().unwrap_or("openai");
    let Some(provider) = ProviderKind::parse(kind) else {
        return Err(ConfigError::new(
            at("provider"),
            format!(
                "{kind:?} is not a supported provider (supported: \"openai\", \"azure\", \
                 \"anthropic\", \"gemini\")"
            ),
        ));
    };
    let base_url = match (t.base_url, provider) {
        (Some(url), _) => url,
        (None, ProviderKind::OpenAi) => DEFAULT_OPENAI_BASE_URL.to_owned(),
        (None, ProviderKind::Anthropic) => {
            reprise_providers::anthropic::DEFAULT_BASE_URL.to_owned()
        }
        (None, ProviderKind::Gemini) => reprise_providers::gemini::DEFAULT_BASE_URL.to_owned(),
        (None, ProviderKind::Azure) => {
            return Err(ConfigError::new(
                at("base_url"),
                "an Azure OpenAI target needs its resource URL, e.g. \
                 https://NAME.openai.azure.com",
            ));
        }
    };
    if t.api_version.is_some() && provider != ProviderKind::Azure {
        return Err(ConfigError::new(
            at("api_version"),
            "only Azure OpenAI targets take an api_version",
        ));
    }
    validate_url(&base_url).map_err(|reason| ConfigError::new(at("base_url"), reason))?;

    let api_key = match &t.api_key_env {
        Some(var) => Some(Secret::new(env.var(var).ok_or_else(|| {
            ConfigError::new(
                at("api_key_env"),
                format!("environment variable {var} is not set"),
            )
        })?)),
        None => None,
    };

    if t.api_key_env.is_some() && t.api_key_secret.is_some() {
        return Err(ConfigError::new(
            at("api_key_secret"),
            "a target takes its key from api_key_env or api_key_secret, not both",
        ));
    }

    let mut headers = Vec::with_capacity(t.headers.len());
    for (name, value) in t.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::new(
                at(&format!("headers.{name}")),
                "not a valid HTTP header name",
            ));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(ConfigError::new(
                at(&format!("headers.{name}")),
                "not a valid HTTP header value",
            ));
        }
        headers.push((name, Secret::new(value)));
    }

    for (j, pattern) in t.models.iter().enumerate() {
        if pattern.trim().is_empty() {
            return Err(ConfigError::new(
                format!("targets[{i}].models[{j}]"),
                "empty model pattern",
            ));
        }
    }

    let defaults = Timeouts::default();
    let ms = |key: &str, v: Option<u64>, default: Duration| match v {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(at(key), "must be at least 1 ms")),
        Some(v) => Ok(Duration::from_millis(v)),
    };
    let timeouts = Timeouts {
        connect: ms("connect_timeout_ms", t.connect_timeout_ms, defaults.connect)?,
        first_byte: ms(
            "first_byte_timeout_ms",
            t.first_byte_timeout_ms,
            defaults.first_byte,
        )?,
        total: ms("total_timeout_ms", t.total_timeout_ms, defaults.total)?,
        stream_idle: ms(
            "stream_idle_timeout_ms",
            t.stream_idle_timeout_ms,
            defaults.stream_idle,
        )?,
    };

    Ok(TargetConfig {
        name: t.name,
        provider,
        base_url,
        api_key_env: t.api_key_env,
        api_key,
        api_key_secret: t.api_key_secret,
        headers,
        models: t.models,
        timeouts,
        http2_prior_knowledge: t.http2_prior_knowledge.unwrap_or(false),
        api_version: t.api_version,
    })
}

pub(super) fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if host.contains('@') {
        return Err("credentials in the URL are not allowed; use api_key_env".to_owned());
    }
    if url.contains('?') || url.contains('#') {
        return Err(format!("{url:?} must not contain a query or fragment"));
    }
    Ok(())
}
