//! Stream and recording state changes, as IVS reports them on EventBridge.

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
    /// A recording channel's push started a new recording (after its `StreamStart`).
    RecordingStart {
        /// The channel.
        channel_id: String,
        /// The session whose media starts it.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// The recording (the last part of its key prefix).
        recording_id: String,
        /// The bucket it is written to.
        bucket_name: String,
        /// Where in the bucket: `ivs/v1/<account>/<channel id>/<y>/<m>/<d>/<h>/<min>/<recording id>`.
        key_prefix: String,
    },
    /// The recording is finished: the reconnect window passed after its last push, or
    /// its channel was stopped or deleted, or a previous run left it open.
    RecordingEnd {
        /// The channel.
        channel_id: String,
        /// The last session it recorded.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// The recording.
        recording_id: String,
        /// The bucket it is written to.
        bucket_name: String,
        /// Where in the bucket.
        key_prefix: String,
        /// The media it holds, in milliseconds.
        duration_ms: u64,
        /// The sessions it recorded, in order (reconnects within the window).
        stream_ids: Vec<String>,
    },
    /// A recording could not start (its bucket directory cannot be written): the push
    /// goes on unrecorded.
    RecordingStartFailure {
        /// The channel.
        channel_id: String,
        /// The session.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// The bucket.
        bucket_name: String,
        /// What went wrong.
        reason: String,
    },
    /// A recording could not be finished (its final files cannot be written); what was
    /// written stays.
    RecordingEndFailure {
        /// The channel.
        channel_id: String,
        /// The last session it recorded.
        session_id: String,
        /// When it happened.
        at: DateTime<Utc>,
        /// The recording.
        recording_id: String,
        /// The bucket.
        bucket_name: String,
        /// Where in the bucket.
        key_prefix: String,
        /// What went wrong.
        reason: String,
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
            | Self::StreamTakeover { channel_id, .. }
            | Self::RecordingStart { channel_id, .. }
            | Self::RecordingEnd { channel_id, .. }
            | Self::RecordingStartFailure { channel_id, .. }
            | Self::RecordingEndFailure { channel_id, .. } => channel_id,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::SessionCreated { at, .. }
            | Self::StreamStart { at, .. }
            | Self::StreamEnd { at, .. }
            | Self::StreamFailure { at, .. }
            | Self::StreamTakeover { at, .. }
            | Self::RecordingStart { at, .. }
            | Self::RecordingEnd { at, .. }
            | Self::RecordingStartFailure { at, .. }
            | Self::RecordingEndFailure { at, .. } => *at,
        }
    }

    /// The session the event is about.
    pub fn session_id(&self) -> &str {
        match self {
            Self::SessionCreated { session_id, .. }
            | Self::StreamStart { session_id, .. }
            | Self::StreamEnd { session_id, .. }
            | Self::StreamFailure { session_id, .. }
            | Self::StreamTakeover { session_id, .. }
            | Self::RecordingStart { session_id, .. }
            | Self::RecordingEnd { session_id, .. }
            | Self::RecordingStartFailure { session_id, .. }
            | Self::RecordingEndFailure { session_id, .. } => session_id,
        }
    }
}
