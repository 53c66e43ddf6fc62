//! The encoder's connection beside a stream's status, as the stream item keeps it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The encoder's connection, beside the stream's `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IngestState {
    /// No encoder is pushing.
    #[default]
    Idle,
    /// An encoder is pushing.
    Connected,
    /// The push dropped; the class ends by itself unless it comes back before
    /// `reconnect_deadline` (a stream that went live from its encoder).
    Reconnecting,
}

impl IngestState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
        }
    }
}

/// What the stream item keeps of its ingest: the state and the session it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ingest {
    pub state: IngestState,
    /// The video service's id of the current (or last) push.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The video service's time of the event that set this state: an older event never
    /// overrides a newer one, however late it arrives.
    #[serde(default)]
    pub changed_at: Option<DateTime<Utc>>,
    /// While reconnecting: when the class ends unless the push comes back.
    #[serde(default)]
    pub reconnect_deadline: Option<DateTime<Utc>>,
}

/// Health of a push, measured from what arrives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngestHealth {
    /// RFC 6381, e.g. `avc1.64001f`.
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub keyframe_interval_seconds: Option<f64>,
}
