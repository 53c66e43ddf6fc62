//! `$default`: the actions a connected client sends as `{ "action": ... }`
//! ([`ClientAction`]).
//!
//! Replies go back to the sender through `@connections` with `sequence: null`; errors
//! are replied as `{ "type": "error", "data": { "code", "message", "action" } }` and
//! never close the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use livestream::ApiError;
use livestream::live::{
    CATCH_UP_DEFAULT, CATCH_UP_MAX, ChatAccepted, ChatHistory, ClientAction as Action, Pong, data,
};
use livestream::model::Connection;
use livestream::model::chat::SendMessageInput;
use livestream::realtime::{client_event, pack_frames};
use livestream::service::{PageRequest, chat};
use livestream::store::connections::{CHAT_TOKEN_BURST, CHAT_TOKEN_INTERVAL_MS, ChatToken};
use serde::Deserialize;
use serde_json::Value;

use crate::{WsState, connection_id, error_response, response};

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
    state: &WsState,
    connection: &Connection,
    action: Action,
) -> Result<Vec<Value>, ApiError> {
    let store = &state.app.store;
    let stream_id = connection.stream_id.as_str();
    match action {
        Action::Ping => Ok(vec![client_event("pong", stream_id, data(&Pong {}))]),
        Action::Chat {
            message,
            message_type,
        } => {
            let now_ms = livestream::model::now().timestamp_millis();
            if let ChatToken::Wait(ms) = store
                .take_chat_token(&connection.connection_id, now_ms)
                .await?
            {
                return Err(ApiError::RateLimited {
                    message: format!(
                        "at most {} chat messages a second (bursts of {}) per connection",
                        1000 / CHAT_TOKEN_INTERVAL_MS,
                        CHAT_TOKEN_BURST
                    ),
                    retry_after_secs: u64::try_from(ms).unwrap_or(1).div_ceil(1000).max(1),
                });
            }
            let input = SendMessageInput {
                message,
                message_type,
            };
            let sent = chat::send(store, &connection.identity(), stream_id, input).await?;
            Ok(vec![client_event(
                "chat.accepted",
                stream_id,
                data(&ChatAccepted {
                    id: sent.id,
                    seq: sent.seq,
                }),
            )])
        }
        Action::CatchUp { since, limit } => {
            let limit = limit.unwrap_or(CATCH_UP_DEFAULT);
            if !(1..=CATCH_UP_MAX).contains(&limit) {
                return Err(ApiError::invalid(
                    "limit",
                    format!("must be from 1 to {CATCH_UP_MAX}"),
                ));
            }
            let page = PageRequest {
                cursor: None,
                limit,
            };
            let history = chat::list(store, &connection.identity(), stream_id, since, page).await?;
            let has_more = history.next_cursor.is_some();
            // Each message its own event, so pack_frames can split them under the frame limit.
            let mut events: Vec<Value> = history
                .items
                .into_iter()
                .map(|m| client_event("chat.message", stream_id, m))
                .collect();
            events.push(client_event(
                "chat.history",
                stream_id,
                data(&ChatHistory {
                    since,
                    last_seq: history.last_seq,
                    has_more,
                }),
            ));
            Ok(events)
        }
    }
}
