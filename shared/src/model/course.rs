//! Courses and enrollments: just enough to decide who may stream and who may watch.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::{parse_text, pattern};
use crate::error::Validator;

/// A course taught by one teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Course {
    pub id: String,
    pub title: String,
    pub description: String,
    pub teacher_id: String,
    pub created_at: DateTime<Utc>,
}

/// A student's membership of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Enrollment {
    pub course_id: String,
    pub user_id: String,
    pub enrolled_by: String,
    pub enrolled_at: DateTime<Utc>,
}

/// The body of `POST /api/courses`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "title": "Rust 101", "description": "Ten weeks, from ownership to async." }))]
pub struct CreateCourseInput {
    #[schemars(length(min = 1, max = 200), pattern(pattern::LINE_REQUIRED))]
    pub title: String,
    #[serde(default)]
    #[schemars(length(max = 5000), pattern(pattern::MULTILINE))]
    pub description: Option<String>,
}

/// The body of `POST /api/courses/{id}/enrollments`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "user_id": "student-1" }))]
pub struct EnrollInput {
    /// The student's `sub`.
    #[schemars(pattern(pattern::USER_ID))]
    pub user_id: String,
}

impl CreateCourseInput {
    /// The trimmed title and description.
    pub fn validate(&self) -> Result<(String, String), crate::ApiError> {
        let mut v = Validator::new();
        let title = v.check(parse_text("title", &self.title, 1, 200, false));
        let description = v.check(parse_text(
            "description",
            self.description.as_deref().unwrap_or(""),
            0,
            5000,
            true,
        ));
        v.finish()?;
        Ok((title.unwrap_or_default(), description.unwrap_or_default()))
    }
}
