//! The domain crate of the livestream backend.
//!
//! Every Lambda function links this crate: it holds the models and their validation,
//! the rules (who may do what, which state changes are allowed), the single-table
//! DynamoDB store, JWT authentication, and the HTTP envelopes. Functions only parse an
//! event, call a rule here and map the result.

pub mod apigw;
pub mod asyncapi;
pub mod auth;
pub mod aws;
#[cfg(feature = "change-stream")]
pub mod change_stream;
pub mod config;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod error;
pub mod http;
pub mod live;
pub mod model;
pub mod openapi;
pub mod realtime;
pub mod recordings;
pub mod routes;
pub mod service;
pub mod store;
pub mod table;
pub mod telemetry;
pub mod video;

#[cfg(feature = "test-util")]
pub mod metering;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::AppState;
pub use error::ApiError;
