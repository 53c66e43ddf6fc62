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
        let config = aws_config::load_from_env().await;
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .build();
        Ok(Self::new(Client::from_conf(conf)))
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
