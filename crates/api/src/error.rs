use serde::{Deserialize, Serialize};

/// The body of every error the gateway sends: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// OpenAI always sends the key, `null` when there is no parameter to blame.
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn new(
        message: impl Into<String>,
        kind: impl Into<String>,
        param: Option<String>,
        code: Option<String>,
    ) -> Self {
        Self {
            error: ErrorObject {
                message: message.into(),
                kind: kind.into(),
                param,
                code,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_null_param_and_code_like_openai() {
        let body = ErrorBody::new("boom", "server_error", None, None);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#
        );
    }
}
