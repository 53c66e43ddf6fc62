//! The AsyncAPI 3.0 document of the WebSocket API, generated from the protocol's types
//! ([`crate::live`]). Committed as `docs/asyncapi.json` (a test keeps it current).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::live::{ClientAction, Origin, SERVER_EVENTS};
use crate::model::text::pattern;

const SEQUENCE: &str = "Live events: the change record's sequence number, a decimal string that \
    only grows within a stream (compare as integers; order and de-duplicate by it). Replies to \
    the sender's own action (pong, chat.accepted, chat.history, error and the chat.message \
    events of catch_up) are not part of that order: null. Chat messages have their own gap-free \
    `seq` in `data`, which is what catch_up resumes from.";

fn generator() -> SchemaGenerator {
    // AsyncAPI's default schema format is a superset of JSON Schema draft 07.
    SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .for_serialize()
        .into_generator()
}

fn message_name(kind: &str) -> String {
    kind.replace('.', "_")
}

/// The client actions, one message each, from the variants of [`ClientAction`].
fn action_messages(generator: &mut SchemaGenerator) -> Vec<(String, Value)> {
    let mut deserialize = SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let root = ClientAction::json_schema(&mut deserialize);
    for (name, schema) in deserialize.take_definitions(true) {
        generator.definitions_mut().insert(name, schema);
    }
    let variants = root
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants
        .into_iter()
        .map(|payload| {
            let action = payload["properties"]["action"]["const"]
                .as_str()
                .or_else(|| payload["properties"]["action"]["enum"][0].as_str())
                .expect("every action variant names its action")
                .to_string();
            let message = json!({
                "name": action,
                "title": format!("{{\"action\": \"{action}\"}}"),
                "summary": payload.get("description").cloned().unwrap_or(Value::Null),
                "payload": payload,
            });
            (action, message)
        })
        .collect()
}

/// The AsyncAPI 3.0 document.
pub fn document() -> Value {
    let mut generator = generator();
    let mut messages = Map::new();
    let mut live = Vec::new();
    for event in SERVER_EVENTS {
        let data = (event.data)(&mut generator);
        let sequence = match event.origin {
            Origin::Live => {
                json!({ "type": "string", "pattern": "^[0-9]+$", "description": SEQUENCE })
            }
            Origin::Reply => json!({ "type": "null", "description": SEQUENCE }),
        };
        let sequence = if event.name == "chat.message" {
            json!({ "type": ["string", "null"], "pattern": "^[0-9]+$", "description": SEQUENCE })
        } else {
            sequence
        };
        let name = message_name(event.name);
        messages.insert(
            name.clone(),
            json!({
                "name": event.name,
                "title": event.name,
                "summary": event.summary,
                "description": format!("Audience: {}.", event.audience),
                "payload": {
                    "type": "object",
                    "required": ["type", "stream_id", "data", "sequence"],
                    "additionalProperties": false,
                    "properties": {
                        "type": { "const": event.name },
                        "stream_id": { "type": "string", "pattern": pattern::ULID },
                        "data": data,
                        "sequence": sequence,
                    }
                }
            }),
        );
        if event.origin == Origin::Live {
            live.push(json!({ "$ref": format!("#/channels/stream/messages/{name}") }));
        }
    }
    let reply_of = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({ "$ref": format!("#/channels/stream/messages/{}", message_name(n)) }))
            .collect()
    };
    let batch_items: Vec<Value> = SERVER_EVENTS
        .iter()
        .map(|e| json!({ "$ref": format!("#/components/messages/{}/payload", message_name(e.name)) }))
        .collect();
    messages.insert(
        "batch".into(),
        json!({
            "name": "batch",
            "title": "several events in one frame",
            "summary": "The events of one change-stream batch bound for one connection, and a catch_up's replies, come as one frame: a JSON array of the messages above, in order",
            "payload": { "type": "array", "minItems": 2, "items": { "oneOf": batch_items } }
        }),
    );
    let mut channel_messages = Map::new();
    let mut operations = Map::new();
    let actions = action_messages(&mut generator);
    for (action, _) in &actions {
        channel_messages.insert(
            action.clone(),
            json!({ "$ref": format!("#/components/messages/{action}") }),
        );
    }
    for name in messages.keys() {
        channel_messages.insert(
            name.clone(),
            json!({ "$ref": format!("#/components/messages/{name}") }),
        );
    }
    for (action, _) in &actions {
        // Every action may be answered with an error instead.
        let reply = match action.as_str() {
            "ping" => reply_of(&["pong", "error"]),
            "chat" => reply_of(&["chat.accepted", "error"]),
            _ => reply_of(&["chat.message", "chat.history", "batch", "error"]),
        };
        operations.insert(
            format!("send_{action}"),
            json!({
                "action": "send",
                "channel": { "$ref": "#/channels/stream" },
                "summary": format!("Send {{\"action\": \"{action}\"}}"),
                "messages": [{ "$ref": format!("#/channels/stream/messages/{action}") }],
                "reply": { "channel": { "$ref": "#/channels/stream" }, "messages": reply }
            }),
        );
    }
    live.push(json!({ "$ref": "#/channels/stream/messages/batch" }));
    operations.insert(
        "receive_live_events".into(),
        json!({
            "action": "receive",
            "channel": { "$ref": "#/channels/stream" },
            "summary": "Live events of the stream, pushed as the table changes",
            "messages": live,
        }),
    );
    let mut components_messages: Map<String, Value> = actions.into_iter().collect();
    components_messages.extend(messages);
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Livestream backend: live events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One WebSocket connection per viewer of one stream. Connect with \
                `?token=<JWT>&stream_id=<id>` (browsers cannot set headers on WebSockets); a \
                refused connection gets 401, 403, 404 or 409 and stores nothing. An open \
                connection to a live stream counts its user as watching. Clients send \
                `{\"action\": ...}`; the server sends `{type, stream_id, data, sequence}`, \
                several at once as a JSON array. API Gateway closes connections after 2 hours \
                and after 10 idle minutes: reconnect, `catch_up` from the last chat `seq`, and \
                re-read the stream and the question list over HTTP (docs/openapi.json)."
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:3001",
                "protocol": "ws",
                "description": "The local stack (`cargo run -p local`)"
            },
            "aws": {
                "host": "{api_id}.execute-api.{region}.amazonaws.com",
                "pathname": "/{stage}",
                "protocol": "wss",
                "description": "A deployment: its `WebSocketUrl` output",
                "variables": {
                    "api_id": { "description": "The WebSocket API's id" },
                    "region": { "default": "us-east-1" },
                    "stage": { "default": "prod" }
                }
            }
        },
        "channels": {
            "stream": {
                "address": "/",
                "title": "One stream's live events",
                "messages": channel_messages,
                "bindings": { "ws": {
                    "bindingVersion": "0.1.0",
                    "query": {
                        "type": "object",
                        "required": ["token", "stream_id"],
                        "properties": {
                            "token": { "type": "string", "description": "The user's JWT" },
                            "stream_id": { "type": "string", "pattern": pattern::ULID }
                        }
                    }
                } }
            }
        },
        "operations": operations,
        "components": {
            "messages": components_messages,
            "schemas": schemas,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_event_and_action_is_a_message() {
        let doc = document();
        let messages = doc["components"]["messages"].as_object().unwrap();
        for event in SERVER_EVENTS {
            let message = &messages[&message_name(event.name)];
            assert_eq!(
                message["payload"]["properties"]["type"]["const"],
                event.name
            );
        }
        for action in ["ping", "chat", "catch_up"] {
            assert!(messages.contains_key(action), "{action}");
        }
    }

    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.json");
        let committed: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        assert!(
            committed == document(),
            "docs/asyncapi.json is stale: run `cargo run -p livestream-infra --bin gen-template`"
        );
    }
}
