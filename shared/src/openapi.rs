//! The OpenAPI document of the HTTP API, generated from [`crate::routes::ROUTES`] so it
//! lists exactly the deployed routes. Committed as `docs/openapi.json` (a test keeps it
//! current) and served by the local stack at `/openapi.json`.

use serde_json::{Map, Value, json};

use crate::routes::ROUTES;

/// One line on what each function does, for the document.
fn summary(function: &str) -> &'static str {
    match function {
        "create-stream" => "Schedule a stream of a course you teach (teacher)",
        "list-live-streams" => "Live streams you may watch, newest first",
        "list-my-streams" => "Your streams in every status (teacher)",
        "get-stream" => "One stream (stream_key only for its instructor)",
        "update-stream" => "Change a stream's details (instructor, until it ends)",
        "start-stream" => "scheduled -> live (instructor)",
        "stop-stream" => "live -> ended, with the duration and final stats (instructor)",
        "cancel-stream" => "scheduled -> cancelled (instructor)",
        "update-stream-settings" => "Slow mode, blocked words, question approval (instructor)",
        "join-stream" => "Start watching a live stream (idempotent)",
        "leave-stream" => "Stop watching (idempotent)",
        "list-participants" => "Participants and their permissions (moderators)",
        "update-participant" => "Set is_moderator, can_chat, can_ask_questions (instructor)",
        "send-chat-message" => "Send a chat message (joined participants)",
        "list-chat-messages" => "Messages after `since`, oldest first",
        "hide-chat-message" => "Hide a message (moderators)",
        "pin-chat-message" => "Pin a message (moderators)",
        "unpin-chat-message" => "Unpin (moderators)",
        "get-stream-stats" => "Analytics (instructor, admins)",
        "create-course" => "Create a course (teacher)",
        "list-my-courses" => "Courses you teach or are enrolled in",
        "enroll-student" => "Enroll a student (the course's teacher)",
        "ask-question" => "Ask a question (joined participants)",
        "list-questions" => "Questions, top or recent, filtered",
        "upvote-question" => "Upvote (once per user, idempotent)",
        "remove-upvote" => "Withdraw your upvote (idempotent)",
        "answer-question" => "Answer or edit the answer (moderators)",
        "hide-question" => "Hide from students (moderators)",
        "approve-question" => "pending -> open (moderators)",
        "dismiss-question" => "Take off the board (moderators)",
        "reopen-question" => "Put a dismissed question back (moderators)",
        "highlight-question" => "Mark as now answering (moderators)",
        "clear-highlight" => "Clear the highlight (moderators)",
        _ => "",
    }
}

fn query_parameters(function: &str) -> Vec<(&'static str, &'static str)> {
    let paging = [
        ("cursor", "Opaque cursor of the next page"),
        ("limit", "Page size"),
    ];
    match function {
        "list-live-streams" | "list-my-streams" | "list-my-courses" | "list-participants" => {
            paging.to_vec()
        }
        "list-chat-messages" => vec![
            ("since", "Only messages with a greater seq"),
            paging[0],
            paging[1],
        ],
        "list-questions" => vec![
            ("sort", "top (default) or recent"),
            ("filter", "all (default), answered or unanswered"),
            ("status", "pending: the approval queue (moderators)"),
            paging[0],
            paging[1],
        ],
        _ => Vec::new(),
    }
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(query_parameters(route.function).into_iter().map(|(name, description)| {
            json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
        }));
        let mut operation = json!({
            "operationId": route.function,
            "summary": summary(route.function),
            "parameters": parameters,
            "responses": {
                "200": { "description": "OK", "content": { "application/json": {} } },
                "400": error_response("Malformed request"),
                "401": error_response("Missing or invalid token"),
                "403": error_response("Not allowed"),
                "404": error_response("Not found"),
                "409": error_response("Wrong state"),
                "422": error_response("Validation failed"),
                "429": error_response("Rate limited (Retry-After)"),
            }
        });
        if matches!(route.method, "POST" | "PUT") {
            operation["requestBody"] =
                json!({ "required": false, "content": { "application/json": {} } });
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Livestream backend", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": "http://127.0.0.1:3000", "description": "local stack" }],
        "security": [{ "bearerAuth": [] }],
        "components": {
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "description": "Stable machine code, e.g. stream_not_live" },
                            "message": { "type": "string" },
                            "details": { "type": "array", "items": { "type": "object", "properties": {
                                "field": { "type": "string" }, "message": { "type": "string" } } } },
                            "retry_after_seconds": { "type": "integer" }
                        }
                    } }
                }
            }
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_a_summary() {
        let doc = document();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert_eq!(op["operationId"], route.function);
            assert!(
                !op["summary"].as_str().unwrap().is_empty(),
                "{}",
                route.function
            );
        }
    }

    #[test]
    fn the_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            committed == document(),
            "docs/openapi.json is stale: run `cargo run -p livestream-infra --bin gen-template`"
        );
    }
}
