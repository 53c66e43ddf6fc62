//! The domain models and the parsing that guarantees they are valid.

pub mod chat;
pub mod connection;
pub mod course;
pub mod ingest;
pub mod participant;
pub mod question;
pub mod recording;
pub mod stream;
pub mod text;
pub mod video;

pub use chat::{ChatMessage, MessageType};
pub use connection::{Connection, Recipient};
pub use course::{Course, Enrollment};
pub use ingest::{Ingest, IngestHealth, IngestState};
pub use participant::{Participant, Session};
pub use question::{Question, QuestionStatus};
pub use recording::{Recording, RecordingState};
pub use stream::{QualitySettings, Resolution, Stream, StreamStatus};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::error::ApiError;

/// The current time, truncated to milliseconds so stored and returned values agree.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or(now)
}

/// The sortable text form of a time used inside keys.
pub fn sort_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new id: a ULID, so ids sort by creation time.
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// Checks an id from a path or body; anything that is not a ULID cannot exist.
pub fn parse_id(raw: &str, what: &'static str) -> Result<String, ApiError> {
    let raw = raw.trim();
    ulid::Ulid::from_string(raw)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::NotFound(what))
}

/// Checks a user id from a path or body: what an identity provider issues as `sub`.
pub fn parse_user_id(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '|'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid("user_id", "is not a valid user id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_ulids_are_not_found() {
        assert!(parse_id("STREAM#x", "stream").is_err());
        assert!(parse_id("", "stream").is_err());
        let id = new_id();
        assert_eq!(parse_id(&id, "stream").unwrap(), id);
        assert_eq!(parse_id(&id.to_lowercase(), "stream").unwrap(), id);
    }

    #[test]
    fn user_ids_with_key_separators_are_refused() {
        assert!(parse_user_id("student-1").is_ok());
        assert!(parse_user_id("a#b").is_err());
        assert!(parse_user_id(" ").is_err());
    }
}
