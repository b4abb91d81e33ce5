//! Gemini's `streamGenerateContent?alt=sse` events (each a partial `GenerateContentResponse`)
//! turned into OpenAI chunks as each arrives. Gemini sends no terminator: the stream is complete
//! when the connection closes after a candidate carried its `finishReason`.

use std::collections::VecDeque;

use serde_json::{Value, json};

use super::translate::{Context, finish_reason, parts, usage};
use crate::translate as t;
use crate::{StreamEvent, UpstreamError};

#[derive(Debug)]
pub(crate) struct Translator {
    context: Context,
    id: String,
    model: String,
    created: u64,
    started: bool,
    tool_calls: u64,
    finished: bool,
    usage: Value,
}

impl Translator {
    pub(crate) fn new(context: Context) -> Self {
        Self {
            model: context.model.clone(),
            context,
            id: "chatcmpl-gemini".to_owned(),
            created: crate::unix_now(),
            started: false,
            tool_calls: 0,
            finished: false,
            usage: Value::Null,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamEvent {
        StreamEvent::Chunk(t::chunk(&self.id, self.created, &self.model, delta, finish))
    }

    pub(crate) fn event(
        &mut self,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), UpstreamError> {
        let event: Value = serde_json::from_str(data).map_err(|_| {
            UpstreamError::Malformed("a Gemini stream event is not JSON".to_owned())
        })?;
        if let Some(error) = event.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(UpstreamError::InBand(message.to_owned()));
        }
        if !self.started {
            if let Some(id) = event.get("responseId").and_then(Value::as_str) {
                self.id = format!("chatcmpl-{id}");
            }
            if let Some(model) = event.get("modelVersion").and_then(Value::as_str) {
                self.model = model.to_owned();
            }
            self.started = true;
            // A prompt blocked outright gets no answer at all: no content, as its JSON says.
            let blocked = event.get("candidates").is_none()
                && event
                    .get("promptFeedback")
                    .and_then(|f| f.get("blockReason"))
                    .is_some();
            let content = if blocked { Value::Null } else { json!("") };
            out.push_back(self.chunk(json!({"role": "assistant", "content": content}), None));
        }
        if let Some(u) = event.get("usageMetadata") {
            self.usage = u.clone();
        }
        let candidate = event
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        let Some(candidate) = candidate else {
            if event
                .get("promptFeedback")
                .and_then(|f| f.get("blockReason"))
                .is_some()
            {
                self.finished = true;
                out.push_back(self.chunk(json!({}), Some("content_filter")));
            }
            return Ok(());
        };
        let p = parts(candidate);
        if !p.reasoning.is_empty() {
            out.push_back(self.chunk(json!({"reasoning_content": p.reasoning}), None));
        }
        if !p.text.is_empty() {
            out.push_back(self.chunk(json!({"content": p.text}), None));
        }
        for mut call in p.tool_calls {
            call["index"] = Value::from(self.tool_calls);
            self.tool_calls += 1;
            out.push_back(self.chunk(json!({"tool_calls": [call]}), None));
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finished = true;
            let finish = finish_reason(reason, self.tool_calls > 0);
            out.push_back(self.chunk(json!({}), Some(finish)));
        }
        Ok(())
    }

    pub(crate) fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), UpstreamError> {
        if !self.finished {
            return Err(UpstreamError::Truncated);
        }
        if self.context.include_usage {
            out.push_back(StreamEvent::Chunk(t::usage_chunk(
                &self.id,
                self.created,
                &self.model,
                usage(&self.usage),
            )));
        }
        out.push_back(StreamEvent::Done);
        Ok(())
    }
}
