//! Mock upstream providers for Reprise's tests and benchmarks: real HTTP servers on ephemeral
//! loopback ports that speak a provider's wire format and play a scripted list of faults.
//!
//! It stands in for paid providers only; nothing in the product depends on it. Today it speaks
//! the OpenAI (chat completions, the Responses API, embeddings, models), Anthropic (`/v1/messages`) and Gemini (`/v1beta/models/{model}:generateContent`)
//! wire formats, all from one [`MockUpstream`], with one fault script.
//!
//! ```no_run
//! # async fn demo() {
//! use reprise_test_support::MockUpstream;
//! let mock = MockUpstream::start().await;
//! mock.fail_times(2, 503).truncate_after_chunks(3);
//! // first two calls: 503; third: a stream cut after three chunks; then normal replies.
//! # }
//! ```

mod dialects;
mod media;
mod openai;
mod responses;

pub use media::speech_bytes;
pub use openai::{Gate, MockUpstream, Recorded, Step, bag_of_words};
