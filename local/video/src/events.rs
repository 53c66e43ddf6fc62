//! Stream state changes, as IVS reports them on EventBridge.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A change in a channel's stream state.
///
/// Per session the order is `SessionCreated` (then `StreamTakeover` when it replaced a
/// live session, whose `StreamEnd` comes first), `StreamStart` once its media plays,
/// optionally `StreamFailure`, and always one `StreamEnd` last.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IngestEvent {
    /// A publish with an allowed stream key was accepted.
    SessionCreated {
        /// The channel the stream key belongs to.
        channel_id: String,
        /// The new session.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// The session's first media (its init segment) is ready to play.
    StreamStart {
        /// The channel.
        channel_id: String,
        /// The session.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// The session ended: the encoder stopped, its connection dropped or went idle,
    /// or the server cut it off.
    StreamEnd {
        /// The channel.
        channel_id: String,
        /// The session that ended.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// The session's media cannot be remuxed (e.g. not H.264/AAC); its `StreamEnd` follows.
    StreamFailure {
        /// The channel.
        channel_id: String,
        /// The session that failed.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// What was wrong with the media.
        reason: String,
    },
    /// This new session took the channel over from a session that was still live.
    StreamTakeover {
        /// The channel.
        channel_id: String,
        /// The new session.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
}

impl IngestEvent {
    /// The channel the event is about.
    pub fn channel_id(&self) -> &str {
        match self {
            Self::SessionCreated { channel_id, .. }
            | Self::StreamStart { channel_id, .. }
            | Self::StreamEnd { channel_id, .. }
            | Self::StreamFailure { channel_id, .. }
            | Self::StreamTakeover { channel_id, .. } => channel_id,
        }
    }

    /// The session the event is about.
    pub fn session_id(&self) -> &str {
        match self {
            Self::SessionCreated { session_id, .. }
            | Self::StreamStart { session_id, .. }
            | Self::StreamEnd { session_id, .. }
            | Self::StreamFailure { session_id, .. }
            | Self::StreamTakeover { session_id, .. } => session_id,
        }
    }
}
