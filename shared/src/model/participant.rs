//! A user's participation in one stream.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// Where a user's presence comes from: the HTTP join, or one WebSocket connection.
/// A user watches while they have at least one session; viewer counts are per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    Http,
    Connection(String),
}

impl Session {
    /// The member of the participant's `sessions` string set.
    pub fn id(&self) -> String {
        match self {
            Self::Http => "http".to_string(),
            Self::Connection(id) => format!("conn:{id}"),
        }
    }
}

/// A participant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Participant {
    pub stream_id: String,
    pub user_id: String,
    pub display_name: String,
    pub role: Role,
    /// The first join.
    pub joined_at: DateTime<Utc>,
    /// The last time the user stopped watching.
    #[serde(default)]
    pub left_at: Option<DateTime<Utc>>,
    /// Whether the user has at least one session now.
    #[serde(default)]
    pub is_watching: bool,
    /// Start of the current watching period (while `is_watching`).
    #[serde(default)]
    pub watching_since: Option<DateTime<Utc>>,
    /// Seconds watched in finished periods, across re-joins.
    #[serde(default)]
    pub duration_watched: i64,
    #[serde(default)]
    pub is_moderator: bool,
    #[serde(default = "yes")]
    pub can_chat: bool,
    #[serde(default = "yes")]
    pub can_ask_questions: bool,
    /// When the participant last sent a chat message (for slow mode). Never stored as
    /// NULL: slow mode's condition compares it as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_chat_at: Option<DateTime<Utc>>,
    /// The last HTTP join or heartbeat, while the HTTP session is open; presence over
    /// HTTP lapses when it is older than the sweeper's cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_seen_at: Option<DateTime<Utc>>,
    /// Active sessions (see [`Session::id`]); a string set, absent when empty.
    #[serde(default)]
    pub sessions: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Participant {
    /// Seconds watched up to `at`, including the current period.
    pub fn watched_until(&self, at: DateTime<Utc>) -> i64 {
        let current = match (self.is_watching, self.watching_since) {
            (true, Some(since)) if at > since => (at - since).num_seconds(),
            _ => 0,
        };
        self.duration_watched + current
    }
}
