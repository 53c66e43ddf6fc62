//! A WebSocket connection of a user watching one stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Identity, Role};

/// API Gateway closes WebSocket connections after two hours; the record outlives
/// that a little so a lost `$disconnect` is still cleaned up by TTL.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600 + 10 * 60;

/// A connection as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub connection_id: String,
    pub stream_id: String,
    pub user_id: String,
    pub role: Role,
    pub display_name: String,
    /// The stream's instructor or an admin: sees moderation-only events.
    #[serde(default)]
    pub is_staff: bool,
    pub connected_at: DateTime<Utc>,
    /// May keep watching if the stream turns private: the instructor, an admin, or a
    /// student enrolled in the course. Connections without it are closed on that change.
    #[serde(default)]
    pub private_ok: bool,
    /// Epoch seconds after which the record may be deleted by DynamoDB's TTL.
    pub ttl: i64,
}

impl Connection {
    /// The identity the connection was opened with (its `$default` events carry no token).
    pub fn identity(&self) -> Identity {
        Identity {
            user_id: self.user_id.clone(),
            role: self.role,
            display_name: self.display_name.clone(),
        }
    }
}

/// What delivery needs of a connection: where to post and which events it may see.
/// The broadcaster reads only these of every connection of a stream at each batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recipient {
    pub connection_id: String,
    pub user_id: String,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub private_ok: bool,
}

impl Recipient {
    /// The stored attributes a recipient is read from.
    pub const ATTRIBUTES: &'static [&'static str] =
        &["connection_id", "user_id", "is_staff", "private_ok"];
}

impl From<&Connection> for Recipient {
    fn from(connection: &Connection) -> Self {
        Self {
            connection_id: connection.connection_id.clone(),
            user_id: connection.user_id.clone(),
            is_staff: connection.is_staff,
            private_ok: connection.private_ok,
        }
    }
}
