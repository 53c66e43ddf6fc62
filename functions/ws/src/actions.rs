//! `$default`: the actions a connected client sends as `{ "action": ... }`.
//!
//! Replies go back to the sender through `@connections`; errors are replied as
//! `{ "type": "error", "data": { "code", "message", "action" } }` and never close the
//! connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use livestream::ApiError;
use livestream::model::Connection;
use livestream::realtime::{client_event, pack_frames};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{WsState, connection_id, error_response, response};

/// A client's message, by its `action`.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Keeps the connection from idling out; answered with `pong`.
    Ping,
}

#[derive(Debug, Deserialize)]
struct ActionName {
    action: Option<String>,
}

/// Handles one `$default` message.
pub async fn handle(
    state: &WsState,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let id = match connection_id(&event) {
        Ok(id) => id.to_string(),
        Err(err) => return error_response(&err),
    };
    let connection = match state.app.store.connection(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error_response(&ApiError::Unauthorized(
                "this connection is not open".into(),
            ));
        }
        Err(err) => return error_response(&err.into()),
    };
    let body = event.body.unwrap_or_default();
    let action_name = serde_json::from_str::<ActionName>(&body)
        .ok()
        .and_then(|a| a.action)
        .unwrap_or_default();
    let replies = match serde_json::from_str::<Action>(&body) {
        Ok(action) => run(state, &connection, action).await,
        Err(_) if action_name.is_empty() => Err(ApiError::bad_request(
            "invalid_message",
            "send JSON like {\"action\": \"ping\"}",
        )),
        Err(err) if is_unknown_variant(&err) => Err(ApiError::bad_request(
            "unknown_action",
            format!("unknown action {action_name:?}"),
        )),
        Err(err) => Err(ApiError::bad_request("invalid_message", err.to_string())),
    };
    let events = replies.unwrap_or_else(|err| {
        if let ApiError::Internal(detail) = &err {
            tracing::error!(error = %detail, action = %action_name, "websocket action failed");
        }
        let mut body = err.body();
        body["error"]["action"] = Value::String(action_name.clone());
        vec![client_event(
            "error",
            &connection.stream_id,
            body["error"].clone(),
        )]
    });
    for frame in pack_frames(&events) {
        if let Err(err) = state.connections.post(&id, frame).await {
            tracing::warn!(connection = %id, error = %err, "reply not delivered");
        }
    }
    response(200, String::new())
}

fn is_unknown_variant(err: &serde_json::Error) -> bool {
    err.to_string().starts_with("unknown variant")
}

async fn run(
    _state: &WsState,
    connection: &Connection,
    action: Action,
) -> Result<Vec<Value>, ApiError> {
    match action {
        Action::Ping => Ok(vec![client_event("pong", &connection.stream_id, json!({}))]),
    }
}
