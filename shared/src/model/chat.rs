//! Chat messages.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::{parse_text, pattern};
use crate::auth::Role;
use crate::error::FieldError;

pub const MESSAGE_MAX: usize = 500;

/// A plain message, or an announcement (instructor and moderators only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    #[default]
    Text,
    Announcement,
}

impl MessageType {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "text" => Ok(Self::Text),
            "announcement" => Ok(Self::Announcement),
            _ => Err(FieldError::new(
                "message_type",
                "must be text or announcement",
            )),
        }
    }
}

/// A chat message as stored. `seq` orders a stream's messages without gaps in
/// commit order, so `since=<seq>` catches a client up exactly. Students never see a
/// hidden message; moderators see it with `hidden: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(example = example())]
pub struct ChatMessage {
    pub id: String,
    /// 1, 2, 3, ... per stream: the `{seq}` of the hide and pin routes.
    #[schemars(range(min = 1))]
    pub seq: i64,
    pub stream_id: String,
    pub user_id: String,
    pub display_name: String,
    pub role: Role,
    pub message: String,
    pub message_type: MessageType,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub hidden_by: Option<String>,
    #[serde(default)]
    pub hidden_at: Option<DateTime<Utc>>,
}

fn example() -> ChatMessage {
    ChatMessage {
        id: "01JD7QB4C5D6E7F8G9H0J1K2M3".into(),
        seq: 12,
        stream_id: "01JD7QA2B3C4D5E6F7G8H9J0KM".into(),
        user_id: "student-1".into(),
        display_name: "Student One".into(),
        role: Role::Student,
        message: "Is the recording shared afterwards?".into(),
        message_type: MessageType::Text,
        created_at: DateTime::parse_from_rfc3339("2030-01-31T09:14:03.120Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        hidden: false,
        hidden_by: None,
        hidden_at: None,
    }
}

impl ChatMessage {
    /// What a client may see: moderators see hidden messages flagged; for anyone else a
    /// hidden message is `None` (its text never leaves the server).
    pub fn view(self, moderator: bool) -> Option<serde_json::Value> {
        if self.hidden && !moderator {
            return None;
        }
        serde_json::to_value(self).ok()
    }
}

/// The body of `POST /api/livestream/{id}/chat` and of the WebSocket `chat` action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "message": "Is the recording shared afterwards?" }))]
pub struct SendMessageInput {
    #[schemars(length(min = 1, max = 500), pattern(pattern::LINE_REQUIRED))]
    pub message: String,
    /// `announcement` only for the instructor and moderators.
    #[serde(default)]
    #[schemars(with = "Option<MessageType>")]
    pub message_type: Option<String>,
}

impl SendMessageInput {
    /// The trimmed message and its type.
    pub fn validate(&self) -> Result<(String, MessageType), crate::ApiError> {
        let mut v = crate::error::Validator::new();
        let message = v.check(parse_text("message", &self.message, 1, MESSAGE_MAX, false));
        let kind = match &self.message_type {
            Some(raw) => v.check(MessageType::parse(raw)),
            None => Some(MessageType::Text),
        };
        v.finish()?;
        Ok((message.unwrap_or_default(), kind.unwrap_or_default()))
    }
}

/// Whether `message` contains one of `blocked` (lowercase) as a whole word.
pub fn contains_blocked_word(message: &str, blocked: &[String]) -> Option<String> {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    blocked
        .iter()
        .find(|b| {
            if b.contains(' ') {
                lower.contains(b.as_str())
            } else {
                words.contains(&b.as_str())
            }
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_words_match_whole_words_case_insensitively() {
        let blocked = vec!["spam".to_string(), "buy now".to_string()];
        assert_eq!(
            contains_blocked_word("This is SPAM!", &blocked).as_deref(),
            Some("spam")
        );
        assert_eq!(
            contains_blocked_word("Please Buy Now", &blocked).as_deref(),
            Some("buy now")
        );
        assert!(contains_blocked_word("spammer here", &blocked).is_none());
    }

    #[test]
    fn messages_are_trimmed_and_bounded() {
        let input = SendMessageInput {
            message: "  hi  ".into(),
            message_type: None,
        };
        assert_eq!(
            input.validate().unwrap(),
            ("hi".to_string(), MessageType::Text)
        );
        let long = SendMessageInput {
            message: "x".repeat(501),
            message_type: None,
        };
        assert!(long.validate().is_err());
        let control = SendMessageInput {
            message: "a\u{1b}[31m".into(),
            message_type: None,
        };
        assert!(control.validate().is_err());
        let kind = SendMessageInput {
            message: "x".into(),
            message_type: Some("shout".into()),
        };
        assert!(kind.validate().is_err());
    }

    #[test]
    fn hidden_messages_are_withheld_from_students_and_flagged_for_moderators() {
        let message = ChatMessage {
            id: "id".into(),
            seq: 1,
            stream_id: "s".into(),
            user_id: "u".into(),
            display_name: "U".into(),
            role: Role::Student,
            message: "secret text".into(),
            message_type: MessageType::Text,
            created_at: Utc::now(),
            hidden: true,
            hidden_by: Some("t".into()),
            hidden_at: Some(Utc::now()),
        };
        assert!(message.clone().view(false).is_none());
        assert_eq!(message.view(true).unwrap()["hidden"], true);
    }
}
