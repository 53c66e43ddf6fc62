//! The WebSocket protocol: what clients send (`{ "action": ... }`) and every server
//! message's `type`, `data` and audience. The WebSocket functions and the broadcaster
//! build their messages from these types, and the AsyncAPI document
//! ([`crate::asyncapi`]) is generated from them.

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::error::ErrorDetail;
use crate::model::text::pattern;
use crate::model::{
    ChatMessage, IngestState, MessageType, QualitySettings, Question, QuestionStatus, StreamStatus,
};

/// Messages one `catch_up` returns by default and at most.
pub const CATCH_UP_DEFAULT: i32 = 100;
pub const CATCH_UP_MAX: i32 = 500;

/// A client's message, by its `action`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientAction {
    /// Keeps the connection from idling out (10 minutes); answered with `pong`.
    Ping,
    /// Sends a chat message (same rules as `POST /api/livestream/{id}/chat`); answered
    /// with `chat.accepted`, and the message itself arrives as `chat.message`.
    Chat {
        #[schemars(length(min = 1, max = 500), pattern(pattern::LINE_REQUIRED))]
        message: String,
        /// `announcement` only for the instructor and moderators.
        #[serde(default)]
        #[schemars(with = "Option<MessageType>")]
        message_type: Option<String>,
    },
    /// The chat messages after `since` (a `seq`), oldest first, as `chat.message` events,
    /// then one `chat.history`; repeat from its `last_seq` while `has_more`.
    CatchUp {
        #[serde(default)]
        #[schemars(range(min = 0))]
        since: i64,
        #[serde(default)]
        #[schemars(range(min = 1, max = CATCH_UP_MAX))]
        limit: Option<i32>,
    },
}

/// `data` of `pong`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pong {}

/// `data` of `chat.accepted`: the message was stored with this `seq`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChatAccepted {
    pub id: String,
    pub seq: i64,
}

/// `data` of `chat.history`, after a `catch_up`'s `chat.message` events.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChatHistory {
    pub since: i64,
    /// The highest `seq` read (hidden messages included): the next `since`.
    pub last_seq: i64,
    /// More messages follow: `catch_up` again from `last_seq`.
    pub has_more: bool,
}

/// `data` of `stream.status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StreamStatusChanged {
    pub status: StreamStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds live, once ended.
    pub duration: Option<i64>,
}

/// `data` of `stream.ingest`: the encoder's connection changed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StreamIngestChanged {
    pub state: IngestState,
    /// While `reconnecting`: when the class ends unless the push comes back (a stream
    /// that went live from its encoder).
    pub reconnect_deadline: Option<DateTime<Utc>>,
    /// The stream went live from its encoder (and so ends when the push does not
    /// come back).
    pub live_from_encoder: bool,
}

/// `data` of `stream.recording`: the class's recording changed state (it started,
/// the class ended while it is still being written, it is ready, it failed, or the
/// instructor deleted it). Ask `GET /api/livestream/{id}/recording` for what to play.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StreamRecordingChanged {
    pub state: crate::model::RecordingState,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// `data` of `stream.updated`: the details and interaction settings everyone sees.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StreamUpdated {
    pub title: String,
    pub description: String,
    pub pinned_message_seq: Option<i64>,
    pub highlighted_question_id: Option<String>,
    pub chat_slow_mode_seconds: u32,
    pub questions_require_approval: bool,
    pub is_public: bool,
    pub quality_settings: QualitySettings,
}

/// `data` of `viewers.updated`: the stream's counters, with the stream's names.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ViewersUpdated {
    pub viewer_count: i64,
    pub max_viewers: i64,
    pub unique_viewers: i64,
}

/// `data` of `chat.hidden`: only the fact, never the text.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChatHidden {
    pub id: String,
    pub seq: i64,
    pub hidden_at: Option<DateTime<Utc>>,
}

/// `data` of `question.updated` for students when a question left their board
/// (hidden or dismissed): they never get its text again.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QuestionRemoved {
    pub id: String,
    pub status: QuestionStatus,
    pub hidden: bool,
}

/// `data` of `question.created` and `question.updated`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum QuestionEvent {
    Question(Question),
    Removed(QuestionRemoved),
}

/// A value as an event's `data`.
pub fn data<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Whether a server message answers its sender or is part of the stream's live order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A reply to the connection's own action, `sequence: null`.
    Reply,
    /// From the table's change stream, with its `sequence`.
    Live,
}

/// One server message type, for the AsyncAPI document.
pub struct ServerEvent {
    pub name: &'static str,
    pub origin: Origin,
    /// Who among a stream's connections receives it.
    pub audience: &'static str,
    pub summary: &'static str,
    pub data: fn(&mut SchemaGenerator) -> Schema,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Every server message type.
pub const SERVER_EVENTS: &[ServerEvent] = &[
    ServerEvent {
        name: "pong",
        origin: Origin::Reply,
        audience: "the sender",
        summary: "Answer to ping",
        data: schema::<Pong>,
    },
    ServerEvent {
        name: "chat.accepted",
        origin: Origin::Reply,
        audience: "the sender",
        summary: "The chat action's message was stored with this seq",
        data: schema::<ChatAccepted>,
    },
    ServerEvent {
        name: "chat.history",
        origin: Origin::Reply,
        audience: "the sender",
        summary: "Ends a catch_up's chat.message events",
        data: schema::<ChatHistory>,
    },
    ServerEvent {
        name: "error",
        origin: Origin::Reply,
        audience: "the sender",
        summary: "An action failed (the connection stays open); code as in HTTP errors",
        data: schema::<ErrorDetail>,
    },
    ServerEvent {
        name: "stream.status",
        origin: Origin::Live,
        audience: "everyone",
        summary: "scheduled -> live -> ended, or cancelled",
        data: schema::<StreamStatusChanged>,
    },
    ServerEvent {
        name: "stream.ingest",
        origin: Origin::Live,
        audience: "everyone",
        summary: "The encoder connected, dropped (reconnecting) or is gone (idle)",
        data: schema::<StreamIngestChanged>,
    },
    ServerEvent {
        name: "stream.recording",
        origin: Origin::Live,
        audience: "everyone",
        summary: "The class's recording started, is being finished (processing), is ready, failed or was deleted",
        data: schema::<StreamRecordingChanged>,
    },
    ServerEvent {
        name: "stream.updated",
        origin: Origin::Live,
        audience: "everyone",
        summary: "Title, description, pinned message, highlighted question or settings changed",
        data: schema::<StreamUpdated>,
    },
    ServerEvent {
        name: "viewers.updated",
        origin: Origin::Live,
        audience: "everyone",
        summary: "Viewer counters changed (at most one per stream per batch)",
        data: schema::<ViewersUpdated>,
    },
    ServerEvent {
        name: "chat.message",
        origin: Origin::Live,
        audience: "everyone; also sent to the sender of catch_up as a reply (sequence null), \
                   where moderators get hidden messages flagged",
        summary: "A chat message, with its seq",
        data: schema::<ChatMessage>,
    },
    ServerEvent {
        name: "chat.hidden",
        origin: Origin::Live,
        audience: "everyone",
        summary: "A moderator hid a message: drop it",
        data: schema::<ChatHidden>,
    },
    ServerEvent {
        name: "question.created",
        origin: Origin::Live,
        audience: "approved questions: everyone (students get anonymous askers as null); \
                   pending ones: moderators and the asker",
        summary: "A question was asked",
        data: schema::<QuestionEvent>,
    },
    ServerEvent {
        name: "question.updated",
        origin: Origin::Live,
        audience: "moderators get the question; students get it while approved and visible, \
                   then once as {id, status, hidden} when hidden or dismissed",
        summary: "Upvotes, answer, status or visibility changed",
        data: schema::<QuestionEvent>,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_as_documented() {
        let ping: ClientAction = serde_json::from_str(r#"{"action":"ping"}"#).unwrap();
        assert!(matches!(ping, ClientAction::Ping));
        let catch_up: ClientAction =
            serde_json::from_str(r#"{"action":"catch_up","since":4}"#).unwrap();
        assert!(matches!(
            catch_up,
            ClientAction::CatchUp {
                since: 4,
                limit: None
            }
        ));
    }

    #[test]
    fn event_names_are_unique() {
        let mut names: Vec<_> = SERVER_EVENTS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERVER_EVENTS.len());
    }
}
