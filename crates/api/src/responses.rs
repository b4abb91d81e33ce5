//! `POST /v1/responses`, OpenAI's Responses API. The gateway forwards the body as it came; it
//! reads only what it routes, limits and accounts by.

use serde::Deserialize;

use crate::{PromptTokensDetails, Usage};

/// What the gateway reads of a Responses API request: the model it routes by, whether the
/// answer streams, and the output ceiling its token estimate uses. Everything else (input,
/// tools, instructions, `previous_response_id`...) is forwarded untouched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// Token accounting as the Responses API reports it (`input_tokens`, `output_tokens`), which
/// the gateway books as a chat completion's (`prompt_tokens`, `completion_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ResponsesUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: Option<PromptTokensDetails>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: u.input_tokens_details,
        }
    }
}

/// Reads only the usage out of a response object (`{"usage": ...}`) or out of the stream event
/// that ends a response (`{"type": "response.completed", "response": {"usage": ...}}`),
/// skipping the rest without allocating it.
#[derive(Debug, Default, Deserialize)]
pub struct ResponsesUsageProbe {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    response: Option<Inner>,
}

#[derive(Debug, Default, Deserialize)]
struct Inner {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

impl ResponsesUsageProbe {
    /// The usage in `json`, if it is a response object or a final stream event that has one.
    pub fn read(json: &[u8]) -> Option<Usage> {
        let probe: Self = serde_json::from_slice(json).ok()?;
        probe
            .usage
            .or(probe.response.and_then(|r| r.usage))
            .map(Usage::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_a_response_and_from_its_final_event() {
        let response = br#"{"id":"resp_1","object":"response","output":[{"type":"message"}],
            "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":12},
            "output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        let usage = ResponsesUsageProbe::read(response).unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (36, 87, 123)
        );
        assert_eq!(usage.cached_tokens(), 12);
        let event = br#"{"type":"response.completed","sequence_number":9,
            "response":{"id":"resp_1","usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}}}"#;
        let usage = ResponsesUsageProbe::read(event).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 6));
        assert_eq!(usage.cached_tokens(), 0);
        // Events before the end carry none; a response in progress has `usage: null`.
        let created = br#"{"type":"response.created","response":{"id":"resp_1","usage":null}}"#;
        assert_eq!(ResponsesUsageProbe::read(created), None);
        let delta = br#"{"type":"response.output_text.delta","delta":"Hi"}"#;
        assert_eq!(ResponsesUsageProbe::read(delta), None);
    }

    #[test]
    fn the_request_is_read_for_routing_only() {
        let request: ResponsesRequest = serde_json::from_str(
            r#"{"model":"gpt-4o","input":[{"role":"user","content":"Hi"}],"stream":true,"tools":[]}"#,
        )
        .unwrap();
        assert_eq!(request.model, "gpt-4o");
        assert!(request.is_stream());
        let request: ResponsesRequest =
            serde_json::from_str(r#"{"model":"gpt-4o","input":"Hi","stream":null}"#).unwrap();
        assert!(!request.is_stream());
        assert!(serde_json::from_str::<ResponsesRequest>(r#"{"input":"Hi"}"#).is_err());
    }
}
