use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `POST /v1/chat/completions` request body.
///
/// Only the fields the gateway acts on are named; everything else stays in `extra` and is
/// serialised back exactly as it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionRequest {
    /// Whether the client asked for a server-sent event stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk on a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The author of a message. Closed on purpose: an unknown role is a client error the gateway
/// reports (naming `messages[i].role`) rather than forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// A string, an array of content parts, or null (assistant turns with tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token accounting as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// `prompt_tokens_details`: how many prompt tokens the provider served from its own prompt
    /// cache (billed at the cached-input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

impl Usage {
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .map_or(0, |d| d.cached_tokens.min(self.prompt_tokens))
    }
}

/// Reads only `usage` out of a completion or a chunk, skipping everything else without
/// allocating it: the cheap way for the proxy path to learn token counts.
#[derive(Debug, Default, Deserialize)]
pub struct UsageProbe {
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A whole (non-streamed) chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `chat.completion.chunk` of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi", "name": "ada", "x_vendor": {"a": 1}}],
            "temperature": 0.2,
            "logit_bias": {"50256": -100},
            "stream": true,
            "stream_options": {"include_usage": true, "future_flag": 1},
            "x_gateway_hint": [1, 2, 3]
        });
        let req: ChatCompletionRequest = serde_json::from_value(body.clone()).unwrap();
        assert!(req.is_stream());
        assert!(req.include_usage());
        assert_eq!(req.messages[0].role, Role::User);
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn usage_probe_reads_only_usage() {
        let probe: UsageProbe = serde_json::from_str(
            r#"{"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
        )
        .unwrap();
        assert_eq!(probe.usage.unwrap().total_tokens, 8);
        let none: UsageProbe = serde_json::from_str(r#"{"usage":null}"#).unwrap();
        assert!(none.usage.is_none());
    }

    #[test]
    fn unknown_role_is_rejected() {
        let err = serde_json::from_str::<ChatCompletionRequest>(
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("wizard"), "{err}");
    }
}
