//! The OpenAPI 3.1 document of the HTTP API: paths from [`crate::routes::ROUTES`], bodies
//! from the Rust types the handlers parse and return. Committed as `docs/openapi.json`
//! (a test keeps it current) and served by the local stack at `/openapi.json`.
//!
//! Schemas come from `schemars`: the handlers are plain Lambda functions behind a routes
//! table rather than a web framework's router (which `utoipa` and `aide` are built around),
//! and the same derive also feeds the WebSocket API's AsyncAPI document
//! ([`crate::asyncapi`]). Paths, statuses and parameters are listed here, next to the
//! routes table, because they come from handlers rather than types.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::error::ErrorBody;
use crate::model::chat::SendMessageInput;
use crate::model::course::{CreateCourseInput, EnrollInput};
use crate::model::question::{AnswerInput, AskInput};
use crate::model::stream::{CreateStreamInput, UpdateStreamInput};
use crate::model::text::pattern;
use crate::model::{ChatMessage, Course, Enrollment, Participant, Question, Stream};
use crate::routes::{ROUTES, Route, RouteAuth};
use crate::service::attendance::AttendanceReport;
use crate::service::chat::ChatPage;
use crate::service::participation::{PermissionsInput, Presence, SettingsInput};
use crate::service::questions::{self, QuestionPage};
use crate::service::recording::RecordingView;
use crate::service::replay::{self, ReplayPage};
use crate::service::stats::StreamStats;
use crate::service::video::{IngestInfo, Playback};
use crate::service::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store::Page;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What one function takes and answers.
struct Operation {
    summary: &'static str,
    request: Option<SchemaFn>,
    /// Success statuses (the first is the usual one) and the body they carry.
    success: &'static [u16],
    response: SchemaFn,
    /// Error statuses this handler can answer, besides 401, 500 and 503 which every
    /// route can.
    errors: &'static [u16],
    query: &'static [Query],
}

#[derive(Clone, Copy)]
enum Query {
    Cursor,
    /// With its default.
    Limit(i64),
    Since,
    Sort,
    Filter,
    Status,
    /// A recording token (`playback_url` of `GET .../recording` carries it).
    Token,
    /// Milliseconds into the recording, from and to.
    FromMs,
    ToMs,
    /// The replay's page size (up to 500).
    ReplayLimit,
}

const PAGED: &[Query] = &[Query::Cursor, Query::Limit(DEFAULT_PAGE_SIZE as i64)];
/// A stream action without a body.
const STREAM_ACTION: &[u16] = &[403, 404, 409];
/// A body-carrying change of a stream, a participant or a question.
const STREAM_CHANGE: &[u16] = &[400, 403, 404, 409, 422];

fn operation(function: &str) -> Operation {
    let op = |summary, request, success, response, errors, query| Operation {
        summary,
        request,
        success,
        response,
        errors,
        query,
    };
    let stream = schema::<Stream> as SchemaFn;
    let question = schema::<Question> as SchemaFn;
    match function {
        "create-stream" => op(
            "Schedule a stream of a course you teach (teacher)",
            Some(schema::<CreateStreamInput>),
            &[201],
            stream,
            &[400, 403, 404, 422],
            &[],
        ),
        "list-live-streams" => op(
            "Live streams you may watch, newest first",
            None,
            &[200],
            schema::<Page<Stream>>,
            &[400, 422],
            PAGED,
        ),
        "list-my-streams" => op(
            "Your streams in every status (teacher)",
            None,
            &[200],
            schema::<Page<Stream>>,
            &[400, 403, 422],
            PAGED,
        ),
        "get-stream" => op(
            "One stream (stream_key and blocked_words only for its instructor)",
            None,
            &[200],
            stream,
            &[403, 404],
            &[],
        ),
        "update-stream" => op(
            "Change a stream's details (instructor, until it ends)",
            Some(schema::<UpdateStreamInput>),
            &[200],
            stream,
            STREAM_CHANGE,
            &[],
        ),
        "start-stream" => op(
            "scheduled -> live (instructor)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "stop-stream" => op(
            "live -> ended, with the duration; writes the final stats (instructor)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "cancel-stream" => op(
            "scheduled -> cancelled (instructor)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "update-stream-settings" => op(
            "Slow mode, blocked words, question approval (instructor)",
            Some(schema::<SettingsInput>),
            &[200],
            stream,
            STREAM_CHANGE,
            &[],
        ),
        "join-stream" => op(
            "Start watching a live stream (idempotent)",
            None,
            &[200],
            schema::<Presence>,
            STREAM_ACTION,
            &[],
        ),
        "leave-stream" => op(
            "Stop watching (idempotent)",
            None,
            &[200],
            schema::<Presence>,
            STREAM_ACTION,
            &[],
        ),
        "list-participants" => op(
            "Participants and their permissions (instructor and moderators)",
            None,
            &[200],
            schema::<Page<Participant>>,
            &[400, 403, 404, 422],
            PAGED,
        ),
        "update-participant" => op(
            "Set is_moderator, can_chat, can_ask_questions (instructor, admins)",
            Some(schema::<PermissionsInput>),
            &[200],
            schema::<Participant>,
            STREAM_CHANGE,
            &[],
        ),
        "send-chat-message" => op(
            "Send a chat message (joined participants); slow mode answers 429",
            Some(schema::<SendMessageInput>),
            &[201],
            schema::<ChatMessage>,
            &[400, 403, 404, 409, 422, 429],
            &[],
        ),
        "list-chat-messages" => op(
            "Messages after `since`, oldest first; resume from `last_seq`",
            None,
            &[200],
            schema::<ChatPage>,
            &[400, 403, 404, 422],
            &[
                Query::Since,
                Query::Cursor,
                Query::Limit(DEFAULT_PAGE_SIZE as i64),
            ],
        ),
        "hide-chat-message" => op(
            "Hide a message from students (instructor and moderators)",
            None,
            &[200],
            schema::<ChatMessage>,
            STREAM_ACTION,
            &[],
        ),
        "pin-chat-message" => op(
            "Pin a message (instructor and moderators)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "unpin-chat-message" => op(
            "Unpin (instructor and moderators)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "get-stream-stats" => op(
            "Analytics: running while live, the final snapshot once ended (instructor, admins)",
            None,
            &[200],
            schema::<StreamStats>,
            &[403, 404],
            &[],
        ),
        "get-ingest" => op(
            "Your encoder's ingest URL and stream key, the push's state and health, and the \
             encoder settings for the stream's quality (instructor, until it ends)",
            None,
            &[200],
            schema::<IngestInfo>,
            &[403, 404, 409, 503],
            &[],
        ),
        "rotate-stream-key" => op(
            "A new stream key: the old one stops working at once and an encoder on it is \
             cut off (instructor, until it ends)",
            None,
            &[200],
            schema::<IngestInfo>,
            &[403, 404, 409, 503],
            &[],
        ),
        "get-playback" => op(
            "Where to play the live video: a private stream's URL carries a short-lived \
             token for you only (anyone who may watch, until it ends)",
            None,
            &[200],
            schema::<Playback>,
            &[403, 404, 409, 503],
            &[],
        ),
        "get-recording" => op(
            "The class's recording: its state, duration, a thumbnail, and a playlist URL \
             with a short-lived token for you only (anyone who may watch the stream)",
            None,
            &[200],
            schema::<RecordingView>,
            &[403, 404],
            &[],
        ),
        "get-recording-playlist" => op(
            "The recording's HLS media playlist, every segment a presigned URL; \
             authenticated by its `token` alone (players fetch it without headers)",
            None,
            &[200],
            schema::<String>,
            &[403, 404],
            &[Query::Token],
        ),
        "delete-recording" => op(
            "Delete the recording's video (instructor; not while it is still being written): \
             it reads `none` from then on; deleting again changes nothing",
            None,
            &[200],
            schema::<RecordingView>,
            &[403, 404, 409],
            &[],
        ),
        "get-replay" => op(
            "The class's chat messages, questions, answers and highlights between two offsets \
             into its recording, oldest first, hidden ones left out for students (anyone who \
             may watch; 409 `no_replay` for a class never live)",
            None,
            &[200],
            schema::<ReplayPage>,
            &[400, 403, 404, 409, 422],
            &[
                Query::FromMs,
                Query::ToMs,
                Query::Cursor,
                Query::ReplayLimit,
            ],
        ),
        "get-attendance" => op(
            "Attendance: every participant's joins, watch time, share of the class and \
             contributions, and the enrolled students who never came; CSV with \
             `Accept: text/csv` (instructor, admins)",
            None,
            &[200],
            schema::<AttendanceReport>,
            &[403, 404],
            &[],
        ),
        "create-course" => op(
            "Create a course (teacher)",
            Some(schema::<CreateCourseInput>),
            &[201],
            schema::<Course>,
            &[400, 403, 422],
            &[],
        ),
        "list-my-courses" => op(
            "Courses you teach or are enrolled in",
            None,
            &[200],
            schema::<Page<Course>>,
            &[400, 422],
            PAGED,
        ),
        "enroll-student" => op(
            "Enroll a student (the course's teacher): 201 when new, 200 when already enrolled",
            Some(schema::<EnrollInput>),
            &[201, 200],
            schema::<Enrollment>,
            &[400, 403, 404, 422],
            &[],
        ),
        "ask-question" => op(
            "Ask a question (joined participants)",
            Some(schema::<AskInput>),
            &[201],
            question,
            STREAM_CHANGE,
            &[],
        ),
        "list-questions" => op(
            "Questions, top or recent, filtered; the approval queue for moderators",
            None,
            &[200],
            schema::<QuestionPage>,
            &[400, 403, 404, 422],
            &[
                Query::Sort,
                Query::Filter,
                Query::Status,
                Query::Cursor,
                Query::Limit(questions::DEFAULT_PAGE_SIZE as i64),
            ],
        ),
        "upvote-question" => op(
            "Upvote (once per user, not your own; idempotent)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "remove-upvote" => op(
            "Withdraw your upvote (idempotent)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "answer-question" => op(
            "Answer or edit the answer (instructor and moderators)",
            Some(schema::<AnswerInput>),
            &[200],
            question,
            STREAM_CHANGE,
            &[],
        ),
        "hide-question" => op(
            "Hide from students (instructor and moderators)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "approve-question" => op(
            "pending -> open (instructor and moderators)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "dismiss-question" => op(
            "Take off the board (instructor and moderators)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "reopen-question" => op(
            "Put a dismissed question back (instructor and moderators)",
            None,
            &[200],
            question,
            STREAM_ACTION,
            &[],
        ),
        "highlight-question" => op(
            "Mark as now answering (instructor and moderators)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        "clear-highlight" => op(
            "Clear the highlight (instructor and moderators)",
            None,
            &[200],
            stream,
            STREAM_ACTION,
            &[],
        ),
        other => {
            panic!("no OpenAPI description for function {other}: add it to openapi::operation")
        }
    }
}

fn query_parameter(query: Query) -> Value {
    let (name, description, schema) = match query {
        Query::Cursor => (
            "cursor",
            "Opaque cursor of the next page (`next_cursor` of the previous one)",
            json!({ "type": "string" }),
        ),
        Query::Limit(default) => (
            "limit",
            "Page size",
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": default }),
        ),
        Query::Since => (
            "since",
            "Only messages with a greater seq (the last one seen)",
            json!({ "type": "integer", "minimum": 0, "default": 0 }),
        ),
        Query::Sort => (
            "sort",
            "top: most upvoted first; recent: newest first",
            json!({ "type": "string", "enum": ["top", "recent"], "default": "top" }),
        ),
        Query::Filter => (
            "filter",
            "unanswered: open and pending",
            json!({ "type": "string", "enum": ["all", "answered", "unanswered"], "default": "all" }),
        ),
        Query::FromMs => (
            "from_ms",
            "Milliseconds into the recording where the range starts (included); 0 also takes in what happened before the first frame",
            json!({ "type": "integer", "minimum": 0, "default": 0 }),
        ),
        Query::ToMs => (
            "to_ms",
            "Milliseconds into the recording where the range ends (included, at least from_ms); the end of the class when absent",
            json!({ "type": "integer", "minimum": 0 }),
        ),
        Query::ReplayLimit => (
            "limit",
            "Page size",
            json!({ "type": "integer", "minimum": 1, "maximum": replay::MAX_PAGE_SIZE, "default": replay::DEFAULT_PAGE_SIZE }),
        ),
        Query::Token => (
            "token",
            "The recording token of `playback_url` (expired, for another stream or altered: 403 `invalid_recording_token`)",
            json!({ "type": "string" }),
        ),
        Query::Status => (
            "status",
            "pending: the approval queue (instructor and moderators only)",
            json!({ "type": "string", "enum": ["pending"] }),
        ),
    };
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn path_parameter(name: &str) -> Value {
    let (description, schema) = match name {
        "id" => (
            "The stream's id (the course's, under /api/courses)",
            json!({ "type": "string", "pattern": pattern::ULID }),
        ),
        "question_id" => (
            "The question's id",
            json!({ "type": "string", "pattern": pattern::ULID }),
        ),
        "seq" => (
            "The chat message's seq",
            json!({ "type": "integer", "minimum": 1 }),
        ),
        "user_id" => (
            "The participant's user id",
            json!({ "type": "string", "pattern": pattern::USER_ID }),
        ),
        other => panic!("undocumented path parameter {other}"),
    };
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn error_response(status: u16) -> Value {
    let description = match status {
        400 => {
            "Malformed: not JSON, trailing data, a bad cursor (`invalid_body`, `missing_body`, `invalid_cursor`)"
        }
        401 => "Missing, expired or invalid token (`unauthorized`)",
        403 => "Not allowed for this caller",
        404 => "Not found, or not visible to this caller",
        409 => {
            "The stream's or question's state does not allow it (`stream_not_live`, `stream_finished`, ...)"
        }
        422 => {
            "Validation failed (`validation_failed`), one `details` entry per field (its JSON path)"
        }
        429 => "Slow mode (`rate_limited`): retry after `Retry-After` seconds",
        500 => "Our failure (`internal_error`); the detail is logged, never returned",
        503 => {
            "The table stayed throttled or busy (`unavailable`): retry after `Retry-After` seconds"
        }
        _ => "Error",
    };
    let mut response = json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    });
    if status == 429 || status == 503 {
        response["headers"] = json!({ "Retry-After": {
            "description": "Seconds to wait before sending again",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        } });
    }
    response
}

/// The `operationId` of a route: its function's name, suffixed for the second route a
/// function serves (`POST /api/livestream` and `POST /api/livestream/`).
fn operation_id(route: &Route) -> String {
    let earlier = ROUTES
        .iter()
        .take_while(|r| *r != route)
        .filter(|r| r.function == route.function)
        .count();
    match earlier {
        0 => route.function.to_string(),
        n => format!("{}-{}", route.function, n + 1),
    }
}

fn generator(contract_serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    if contract_serialize {
        settings.for_serialize().into_generator()
    } else {
        settings.for_deserialize().into_generator()
    }
}

/// Moves a generator's definitions into `schemas`; a name defined differently by the
/// request and response generators is a bug in the types.
fn merge_definitions(schemas: &mut Map<String, Value>, generator: &mut SchemaGenerator) {
    for (name, schema) in generator.take_definitions(true) {
        if let Some(existing) = schemas.get(&name) {
            assert_eq!(
                existing, &schema,
                "schema {name} differs between requests and responses"
            );
        }
        schemas.insert(name, schema);
    }
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    // Requests are described as they are deserialized, responses as they are serialized
    // (a field with a default is optional in one and always present in the other).
    let mut requests = generator(false);
    let mut responses = generator(true);
    let error = responses.subschema_for::<ErrorBody>();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let op = operation(route.function);
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(path_parameter)
            .collect();
        parameters.extend(op.query.iter().copied().map(query_parameter));
        let body = (op.response)(&mut responses);
        let media_type = response_media_type(route.function);
        let mut statuses = Map::new();
        for status in op.success {
            let description = match status {
                201 => "Created",
                _ => "OK",
            };
            statuses.insert(
                status.to_string(),
                json!({ "description": description, "content": { media_type: { "schema": body } } }),
            );
        }
        if let Some((media_type, content)) = other_media_type(route.function) {
            statuses["200"]["content"][media_type] = content;
        }
        let mut errors: Vec<u16> = op.errors.iter().copied().chain([401, 500, 503]).collect();
        errors.sort_unstable();
        for status in errors {
            statuses.insert(status.to_string(), error_response(status));
        }
        let mut operation = json!({
            "operationId": operation_id(route),
            "summary": op.summary,
            "tags": [tag(route.path)],
            "parameters": parameters,
            "responses": statuses,
        });
        if route.auth == RouteAuth::QueryToken {
            // No bearer token: the handler checks the query's token.
            operation["security"] = json!([]);
        }
        if let Some(request) = op.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": request(&mut requests) } }
            });
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation;
    }
    let mut schemas = Map::new();
    merge_definitions(&mut schemas, &mut requests);
    merge_definitions(&mut schemas, &mut responses);
    debug_assert_eq!(error, json!({ "$ref": "#/components/schemas/ErrorBody" }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Livestream backend",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Live-streamed classes: streams, chat, Q&A, presence, analytics. \
                Every request carries `Authorization: Bearer <JWT>`. Errors have one shape \
                (`ErrorBody`). Live events come over the WebSocket API (docs/asyncapi.json). \
                Request bodies also accept the platform frontend's names where they differ: \
                `quality_settings.bitrate` for `bitrate_kbps`."
        },
        "servers": [{
            "url": "{scheme}://{host}",
            "description": "The local stack (`cargo run -p local`) by default, or a deployment's `HttpApiUrl` output",
            "variables": {
                "scheme": { "default": "http", "enum": ["http", "https"] },
                "host": { "default": "127.0.0.1:3000", "description": "host[:port] of the HTTP API" }
            }
        }],
        "security": [{ "bearerAuth": [] }],
        "tags": [
            { "name": "streams", "description": "Scheduling, settings, lifecycle, analytics" },
            { "name": "participation", "description": "Joining, leaving, participants' permissions" },
            { "name": "chat", "description": "Chat messages, hiding and pinning" },
            { "name": "questions", "description": "Q&A: asking, voting, moderation" },
            { "name": "courses", "description": "Courses and enrollments" }
        ],
        "components": {
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

/// The media type of a function's successful answers.
fn response_media_type(function: &str) -> &'static str {
    match function {
        "get-recording-playlist" => "application/vnd.apple.mpegurl",
        _ => "application/json",
    }
}

/// A second form of a function's 200 answer, chosen by the request's `Accept`.
fn other_media_type(function: &str) -> Option<(&'static str, Value)> {
    match function {
        "get-attendance" => Some((
            "text/csv",
            json!({
                "schema": { "type": "string" },
                "example": "user_id,display_name,role,enrolled,joined_at,left_at,is_watching,watch_time,watched_share,chat_messages_count,questions_count,upvotes_count\r\nstudent-1,Student One,student,true,2030-01-31T09:01:30.000Z,2030-01-31T09:58:02.000Z,false,3392,0.9856,4,1,2\r\nTOTAL,,,1,,,,3392,,4,1,2\r\n"
            }),
        )),
        _ => None,
    }
}

fn tag(path: &str) -> &'static str {
    let segment = |name: &str| path.split('/').any(|s| s == name);
    if path.starts_with("/api/courses") {
        "courses"
    } else if segment("chat") {
        "chat"
    } else if segment("questions") {
        "questions"
    } else if segment("join") || segment("leave") || segment("participants") {
        "participation"
    } else {
        "streams"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_a_unique_operation_id() {
        let doc = document();
        let mut ids = Vec::new();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(
                !op["summary"].as_str().unwrap().is_empty(),
                "{}",
                route.function
            );
            ids.push(op["operationId"].as_str().unwrap().to_string());
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operationIds must be unique");
    }

    #[test]
    fn creates_answer_201_with_the_created_body() {
        let doc = document();
        let create = &doc["paths"]["/api/livestream/"]["post"];
        assert_eq!(
            create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Stream"
        );
        assert!(create["responses"].get("200").is_none());
        let chat = &doc["paths"]["/api/livestream/{id}/chat"]["post"];
        assert!(chat["responses"]["429"]["headers"]["Retry-After"].is_object());
    }

    #[test]
    fn request_bodies_carry_the_validation_rules() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let create = &schemas["CreateStreamInput"];
        assert_eq!(create["required"], json!(["title", "course_id"]));
        assert_eq!(create["additionalProperties"], false);
        assert_eq!(create["properties"]["title"]["maxLength"], 200);
        let quality = &schemas["QualitySettingsInput"];
        assert_eq!(quality["properties"]["bitrate_kbps"]["maximum"], 15000);
        assert_eq!(quality["properties"]["bitrate"]["minimum"], 500);
        assert_eq!(
            schemas["SettingsInput"]["properties"]["chat_slow_mode_seconds"]["maximum"],
            300
        );
    }

    #[test]
    fn typed_parameters() {
        let doc = document();
        let list = &doc["paths"]["/api/livestream/{id}/chat"]["get"]["parameters"];
        let since = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "since")
            .unwrap();
        assert_eq!(since["schema"]["type"], "integer");
        let hide = &doc["paths"]["/api/livestream/{id}/chat/{seq}/hide"]["post"]["parameters"];
        assert_eq!(hide[1]["schema"]["type"], "integer");
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
