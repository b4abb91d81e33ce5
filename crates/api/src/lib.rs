//! OpenAI-shaped wire types: chat completion requests and responses, stream chunks, embeddings,
//! the model list, what the gateway reads of legacy completions and of the Responses API, and the
//! error body.
//!
//! This crate owns the shapes only (serde, no I/O). Every struct keeps the fields it does not know
//! in an `extra` map, so vendor extensions and fields OpenAI adds later survive a trip through the
//! gateway untouched. It does not validate semantics beyond what the shape requires: that is the
//! gateway's job.

mod chat;
mod completions;
mod embeddings;
mod error;
mod models;
mod responses;

pub use chat::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, PromptTokensDetails,
    Role, StreamOptions, Usage, UsageProbe,
};
pub use completions::CompletionsRequest;
pub use embeddings::{EmbeddingsRequest, embeddings_list};
pub use error::{ErrorBody, ErrorObject};
pub use models::{Model, ModelList};
pub use responses::{ResponsesRequest, ResponsesUsage, ResponsesUsageProbe};

/// Fields a struct does not name, kept in arrival order of the map.
pub type Extra = serde_json::Map<String, serde_json::Value>;
