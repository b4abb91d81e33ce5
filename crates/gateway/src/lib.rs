//! The Reprise gateway: configuration, the CLI, HTTP routes, the request pipeline and the server.
//!
//! It owns the request story end to end (see `pipeline`): routes extract and validate the
//! OpenAI-shaped request, the pipeline runs the gateway's steps in order, and the server wires
//! HTTP-generic layers around it. Wire types live in `reprise-api`, upstream calls in
//! `reprise-providers`, durable state in `reprise-storage`.
//!
//! [`app`] builds the router from state, so tests can drive it in-process or over real TCP.

mod admin;
mod auth;
mod cache;
pub mod cli;
pub mod config;
mod dashboard;
mod embedding;
mod error;
mod eval;
mod extract;
mod ledger;
mod limits;
mod metrics;
mod pipeline;
mod pricing;
mod replay;
mod reports;
mod routes;
mod routing;
mod secrets;
mod series;
pub mod server;
mod state;
pub mod telemetry;

pub use error::GatewayError;
pub use routes::app;
pub use state::{AppState, Target};
