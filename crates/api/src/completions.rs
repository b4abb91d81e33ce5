//! `POST /v1/completions`, OpenAI's legacy text completions (still what code-completion tools
//! and base models speak). The gateway forwards the body as it came; it reads only what it
//! routes, limits and accounts by. Answers carry chat-shaped `usage`.

use serde::Deserialize;

use crate::StreamOptions;

/// What the gateway reads of a completions request; `prompt`, `suffix`, `echo`... are forwarded
/// untouched.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompletionsRequest {
    pub model: String,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
}

impl CompletionsRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the client asked for the final usage chunk on a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_read_for_routing_only() {
        let request: CompletionsRequest = serde_json::from_str(
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"def fib(n):","suffix":"\n","max_tokens":64,
                "stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(request.model, "gpt-3.5-turbo-instruct");
        assert!(request.is_stream() && request.include_usage());
        assert_eq!(request.max_tokens, Some(64));
        let request: CompletionsRequest =
            serde_json::from_str(r#"{"model":"m","prompt":["a","b"]}"#).unwrap();
        assert!(!request.is_stream() && !request.include_usage());
        assert!(serde_json::from_str::<CompletionsRequest>(r#"{"prompt":"x"}"#).is_err());
    }
}
