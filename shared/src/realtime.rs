//! Posting to WebSocket clients through the API Gateway Management API
//! (`@connections`), used by the WebSocket functions and the broadcaster.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;

/// Why a post to a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The client is gone (410): its connection record should be deleted.
    #[error("connection is gone")]
    Gone,
    #[error("posting to the connection failed: {0}")]
    Failed(String),
}

/// Attempts of a post (the SDK retries throttling, 5xx and network errors, with
/// backoff; never a 410 Gone).
pub const POST_ATTEMPTS: u32 = 3;

fn post_retries() -> aws_sdk_apigatewaymanagement::config::retry::RetryConfig {
    aws_sdk_apigatewaymanagement::config::retry::RetryConfig::standard()
        .with_max_attempts(POST_ATTEMPTS)
        // A waiting post holds one of a few dozen slots of a fan-out: back off briefly.
        .with_initial_backoff(std::time::Duration::from_millis(50))
}

fn local_config(endpoint: &str) -> aws_sdk_apigatewaymanagement::config::Builder {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Region};
    aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .retry_config(post_retries())
}

/// A client of one WebSocket API's `@connections` endpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Connections {
    client: Client,
}

impl Connections {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// From `WS_MANAGEMENT_ENDPOINT`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// on AWS, the local stack's loopback URL locally.
    pub async fn from_env() -> Result<Self, String> {
        let endpoint = std::env::var("WS_MANAGEMENT_ENDPOINT").map_err(|_| {
            "WS_MANAGEMENT_ENDPOINT is not set: the WebSocket API's @connections endpoint"
                .to_string()
        })?;
        let config = crate::aws::sdk_config().await;
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint)
            .retry_config(post_retries())
            .build();
        Ok(Self::new(Client::from_conf(conf)))
    }

    /// A client of an `@connections` endpoint on this machine (the local stack, tests):
    /// fixed region, dummy credentials.
    pub fn local(endpoint: &str) -> Self {
        use aws_sdk_apigatewaymanagement::config::Credentials;
        let credentials = Credentials::new("local", "local", None, None, "local");
        Self::new(Client::from_conf(
            local_config(endpoint)
                .credentials_provider(credentials)
                .build(),
        ))
    }

    /// [`Connections::local`] sending through `http_client` (the local stack's
    /// in-process one) instead of over HTTP, and unsigned: that `@connections` checks
    /// no signature, and signing was a twentieth of the stack's CPU per live frame.
    pub fn local_over(
        endpoint: &str,
        http_client: aws_sdk_apigatewaymanagement::config::SharedHttpClient,
    ) -> Self {
        use aws_sdk_apigatewaymanagement::config::StalledStreamProtectionConfig;
        Self::new(Client::from_conf(
            local_config(endpoint)
                .http_client(http_client)
                .allow_no_auth()
                // An answer handed over in memory cannot stall.
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .build(),
        ))
    }

    /// Sends one frame to a connection.
    pub async fn post(&self, connection_id: &str, data: Vec<u8>) -> Result<(), PostError> {
        use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(PostToConnectionError::GoneException(_)) => Err(PostError::Gone),
                _ => Err(PostError::Failed(format!(
                    "{}",
                    aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err)
                ))),
            },
        }
    }

    /// Closes a connection from the server side.
    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(DeleteConnectionError::GoneException(_)) => Err(PostError::Gone),
                _ => Err(PostError::Failed(err.to_string())),
            },
        }
    }
}

impl Connections {
    /// Whether a connection is still open (`GetConnection`): `Err(Gone)` when not.
    pub async fn check(&self, connection_id: &str) -> Result<(), PostError> {
        use aws_sdk_apigatewaymanagement::operation::get_connection::GetConnectionError;
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(GetConnectionError::GoneException(_)) => Err(PostError::Gone),
                _ => Err(PostError::Failed(err.to_string())),
            },
        }
    }
}

/// API Gateway refuses WebSocket frames over 32 KB; frames are kept under this.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// A message to a client: `{ "type", "stream_id", "data", "sequence" }`. `sequence` is
/// null here, as in replies to a client's own action; the broadcaster sets it to the
/// change record's sequence number for live events.
pub fn client_event(kind: &str, stream_id: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "type": kind, "stream_id": stream_id, "data": data, "sequence": null })
}

/// Packs events into as few frames as fit under [`MAX_FRAME_BYTES`]: a frame is one
/// event object, or a JSON array of events when several go together. An event that
/// alone exceeds the limit is dropped with an error log (nothing we produce is that big).
pub fn pack_frames(events: &[serde_json::Value]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut size = 2;
    let flush = |batch: &mut Vec<String>, frames: &mut Vec<Vec<u8>>| {
        match batch.len() {
            0 => {}
            1 => frames.push(batch.remove(0).into_bytes()),
            _ => frames.push(format!("[{}]", batch.join(",")).into_bytes()),
        }
        batch.clear();
    };
    for event in events {
        let text = event.to_string();
        if text.len() + 2 > MAX_FRAME_BYTES {
            tracing::error!(
                bytes = text.len(),
                "event larger than a WebSocket frame dropped"
            );
            continue;
        }
        if size + text.len() + 1 > MAX_FRAME_BYTES {
            flush(&mut batch, &mut frames);
            size = 2;
        }
        size += text.len() + 1;
        batch.push(text);
    }
    flush(&mut batch, &mut frames);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_an_object_and_several_are_an_array() {
        let a = client_event("pong", "s", serde_json::json!({}));
        assert_eq!(pack_frames(std::slice::from_ref(&a)).len(), 1);
        let frame: serde_json::Value =
            serde_json::from_slice(&pack_frames(std::slice::from_ref(&a))[0]).unwrap();
        assert!(frame.is_object());
        let frames = pack_frames(&[a.clone(), a.clone()]);
        let frame: serde_json::Value = serde_json::from_slice(&frames[0]).unwrap();
        assert_eq!(frame.as_array().unwrap().len(), 2);
    }

    #[test]
    fn frames_stay_under_the_api_gateway_limit() {
        let big = client_event(
            "chat.message",
            "s",
            serde_json::json!({"message": "x".repeat(1000)}),
        );
        let events = vec![big; 100];
        let frames = pack_frames(&events);
        assert!(frames.len() > 1);
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME_BYTES));
        let total: usize = frames
            .iter()
            .map(
                |f| match serde_json::from_slice::<serde_json::Value>(f).unwrap() {
                    serde_json::Value::Array(a) => a.len(),
                    _ => 1,
                },
            )
            .sum();
        assert_eq!(total, 100);
    }
}
