//! Questions of the Q&A.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::{parse_text, pattern};
use crate::auth::Identity;

pub const QUESTION_MAX: usize = 1000;
pub const ANSWER_MAX: usize = 5000;

/// pending (waits for approval) -> open -> answered; dismissed from any, reopened to open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionStatus {
    Pending,
    #[default]
    Open,
    Answered,
    Dismissed,
}

impl QuestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Open => "open",
            Self::Answered => "answered",
            Self::Dismissed => "dismissed",
        }
    }
}

/// A question as stored. The asker is stored even when anonymous; [`Question::view`]
/// decides who sees it, and the schema is the one of the view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = view_schema, example = example())]
pub struct Question {
    pub id: String,
    pub stream_id: String,
    pub user_id: String,
    pub display_name: String,
    pub anonymous: bool,
    pub text: String,
    pub status: QuestionStatus,
    #[serde(default)]
    pub upvotes: i64,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub answered_by: Option<String>,
    #[serde(default)]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub hidden: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An anonymous question as another student sees it.
fn example() -> serde_json::Value {
    let at = DateTime::parse_from_rfc3339("2030-01-31T09:16:45.500Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    Question {
        id: "01JD7QC9X8W7V6T5S4R3Q2P1N0".into(),
        stream_id: "01JD7QA2B3C4D5E6F7G8H9J0KM".into(),
        user_id: "student-2".into(),
        display_name: "Student Two".into(),
        anonymous: true,
        text: "What is a borrow?".into(),
        upvotes: 7,
        created_at: at,
        updated_at: at,
        ..Question::default()
    }
    .view(None, false, false)
}

/// The schema of [`Question::view`]: the asker may be null, and two flags for the viewer.
fn view_schema(schema: &mut schemars::Schema) {
    let nullable = serde_json::json!({ "type": ["string", "null"], "description": "null for an anonymous question, except for moderators and the asker" });
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert("user_id".into(), nullable.clone());
        props.insert("display_name".into(), nullable);
        props.insert(
            "is_mine".into(),
            serde_json::json!({ "type": "boolean", "description": "the caller asked it" }),
        );
        props.insert(
            "has_upvoted".into(),
            serde_json::json!({ "type": "boolean", "description": "the caller upvoted it" }),
        );
    }
    if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
        required.extend(["is_mine".into(), "has_upvoted".into()]);
    }
}

impl Question {
    /// What a viewer may see. For an anonymous question, only moderators and the asker
    /// see who asked; everyone else gets `user_id` and `display_name` as null.
    pub fn view(
        self,
        viewer: Option<&Identity>,
        moderator: bool,
        has_upvoted: bool,
    ) -> serde_json::Value {
        let is_mine = viewer.is_some_and(|v| v.user_id == self.user_id);
        let reveal = !self.anonymous || moderator || is_mine;
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            if !reveal {
                map.insert("user_id".into(), serde_json::Value::Null);
                map.insert("display_name".into(), serde_json::Value::Null);
            }
            map.insert("is_mine".into(), is_mine.into());
            map.insert("has_upvoted".into(), has_upvoted.into());
        }
        value
    }

    /// Students may see it (approved, not hidden, not dismissed).
    pub fn is_public(&self) -> bool {
        !self.hidden && matches!(self.status, QuestionStatus::Open | QuestionStatus::Answered)
    }
}

/// The body of `POST /api/livestream/{id}/questions`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "text": "What is a borrow?", "anonymous": true }))]
pub struct AskInput {
    #[schemars(length(min = 1, max = 1000), pattern(pattern::MULTILINE_REQUIRED))]
    pub text: String,
    /// Other students see the asker as null.
    #[serde(default)]
    pub anonymous: Option<bool>,
}

impl AskInput {
    pub fn validate(&self) -> Result<String, crate::ApiError> {
        parse_text("text", &self.text, 1, QUESTION_MAX, true)
            .map_err(|e| crate::ApiError::Validation(vec![e]))
    }
}

/// The body of `PUT .../questions/{question_id}/answer`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "answer": "A reference that does not own." }))]
pub struct AnswerInput {
    #[schemars(length(min = 1, max = 5000), pattern(pattern::MULTILINE_REQUIRED))]
    pub answer: String,
}

impl AnswerInput {
    pub fn validate(&self) -> Result<String, crate::ApiError> {
        parse_text("answer", &self.answer, 1, ANSWER_MAX, true)
            .map_err(|e| crate::ApiError::Validation(vec![e]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn question(anonymous: bool) -> Question {
        Question {
            id: "q".into(),
            user_id: "asker".into(),
            display_name: "Asker".into(),
            anonymous,
            text: "why?".into(),
            ..Default::default()
        }
    }

    fn who(id: &str) -> Identity {
        Identity {
            user_id: id.into(),
            role: Role::Student,
            display_name: id.into(),
        }
    }

    #[test]
    fn anonymous_askers_are_hidden_from_other_students_only() {
        let other = question(true).view(Some(&who("other")), false, false);
        assert!(other["user_id"].is_null() && other["display_name"].is_null());
        assert!(!other.to_string().contains("asker"));
        let mine = question(true).view(Some(&who("asker")), false, true);
        assert_eq!(
            (
                mine["user_id"].as_str(),
                mine["is_mine"].as_bool(),
                mine["has_upvoted"].as_bool()
            ),
            (Some("asker"), Some(true), Some(true))
        );
        let moderator = question(true).view(Some(&who("teacher")), true, false);
        assert_eq!(moderator["display_name"], "Asker");
        let named = question(false).view(Some(&who("other")), false, false);
        assert_eq!(named["display_name"], "Asker");
    }
}
