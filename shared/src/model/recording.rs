//! A class's recording, as the stream item keeps it (attribute `recording`): what the
//! video service's "IVS Recording State Change" events said last, and where the
//! playlists and segments are.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a class's recording stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// The video service is writing it (the class is on).
    Recording,
    /// The class has ended and the recording has not yet: the video service waits its
    /// reconnect window for the encoder before it closes the recording.
    Processing,
    /// Complete: plays as a whole (HLS VOD).
    Ready,
    /// The video service could not start or finish it (`failure_reason` says why).
    Failed,
    /// Nothing recorded: the stream does not record, nothing was pushed yet, or the
    /// instructor deleted it.
    #[default]
    None,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "recording",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::None => "none",
        }
    }
}

/// The recording kept on the stream item. Only the states the video service's events
/// set are stored (`recording`, `ready`, `failed`); `processing` is what a stored
/// `recording` of a finished class reads as ([`Recording::state_for`]), and a deleted
/// recording is no recording at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = owner_only_fields_optional)]
pub struct Recording {
    pub state: RecordingState,
    /// The video service's id of the recording session: one recording, however many
    /// times the encoder reconnected within the reconnect window.
    pub session_id: String,
    /// The S3 bucket of the recording. Only for the instructor.
    pub bucket: String,
    /// The recording's S3 key prefix (`ivs/v1/{account}/{channel}/{Y}/{M}/{D}/{h}/{m}/{id}`,
    /// without a trailing slash). Only for the instructor.
    pub key_prefix: String,
    /// When the video service started writing it: the replay's origin (offset 0).
    pub started_at: Option<DateTime<Utc>>,
    /// When the video service closed it.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Its length, from the video service's end event.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Why it failed, as the video service says.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// The video service's time of the event that set this state, in milliseconds: an
    /// older event never overrides a newer one.
    pub event_ms: i64,
}

/// Fields of [`Recording`] that `Stream::view` removes for everyone but the instructor:
/// where the objects are is for the functions that presign them, not for viewers.
pub const OWNER_ONLY: [&str; 2] = ["bucket", "key_prefix"];

fn owner_only_fields_optional(schema: &mut schemars::Schema) {
    if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
        required.retain(|f| !OWNER_ONLY.iter().any(|o| f == o));
    }
}

impl Recording {
    /// The state a client sees: a recording still open when its class is over is
    /// `processing` (the video service closes it after its reconnect window).
    pub fn state_for(&self, class_finished: bool) -> RecordingState {
        match self.state {
            RecordingState::Recording if class_finished => RecordingState::Processing,
            state => state,
        }
    }
}

/// What an "IVS Recording State Change" event says, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingChange {
    Started,
    Ended { duration_ms: Option<i64> },
    Failed { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_value(RecordingState::Processing).unwrap(),
            "processing"
        );
        assert_eq!(RecordingState::default().as_str(), "none");
    }

    #[test]
    fn an_open_recording_of_a_finished_class_is_processing() {
        let recording = Recording {
            state: RecordingState::Recording,
            session_id: "s".into(),
            bucket: "b".into(),
            key_prefix: "p".into(),
            started_at: None,
            ended_at: None,
            duration_ms: None,
            failure_reason: None,
            event_ms: 0,
        };
        assert_eq!(recording.state_for(false), RecordingState::Recording);
        assert_eq!(recording.state_for(true), RecordingState::Processing);
        let ready = Recording {
            state: RecordingState::Ready,
            ..recording
        };
        assert_eq!(ready.state_for(true), RecordingState::Ready);
    }
}
