//! Integration tests: the gateway over real TCP on ephemeral ports, against the mock upstream.
//! One binary, one module per feature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

mod cache;
mod chat;
mod cli;
mod completions;
mod cors;
mod dashboard;
mod embedding;
mod embeddings;
mod errors;
mod forwarded;
mod keys;
mod lifecycle;
mod metrics;
mod providers;
mod responses;
mod routing;
mod sdk;
mod streaming;
mod support;
