//! The one error type of the domain layer and its mapping to HTTP.
//!
//! Every rule returns `Result<_, ApiError>`; [`ApiError::status`] and [`ApiError::code`]
//! are the only place where an error becomes a status and a stable machine code, so
//! frontends can switch on `error.code` without parsing messages.

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One problem with one field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    /// The field's path in the body (`quality_settings.frame_rate`, `blocked_words[2]`)
    /// or the query parameter's name.
    pub field: String,
    pub message: String,
}

/// The body of every error response (and the `data` of a WebSocket `error` event,
/// with the `action` it answers), as [`ApiError::body`] writes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "error": { "code": "validation_failed", "message": "title: must not be empty", "details": [{ "field": "title", "message": "must not be empty" }] } }))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// See [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine code to switch on, e.g. `stream_not_live`, `validation_failed`.
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// One entry per invalid field (`validation_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    /// `rate_limited` and `unavailable` only: the same as the `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// WebSocket `error` events only: the action that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a request can fail with, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: unparsable JSON, a wrong type, a bad cursor.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Missing, expired or otherwise invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The resource does not exist (or the caller may not know it exists).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is valid but the resource's state does not allow it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed input that breaks a validation rule.
    #[error("{}", summary(.0))]
    Validation(Vec<FieldError>),
    /// Valid input this deployment cannot carry (a video quality its video service
    /// does not take), with the fields at fault.
    #[error("{message}")]
    Unsupported {
        code: &'static str,
        message: String,
        details: Vec<FieldError>,
    },
    /// Slow mode or another rate limit: try again after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The table stayed throttled or busy through the SDK's retries: nothing was
    /// written, try again after `Retry-After` (the detail is logged, never returned).
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A failure of ours; the detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client waits before trying an `unavailable` request again.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        _ => format!("{} fields are invalid", errors.len()),
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The lifecycle rule: an ended or cancelled stream's class no longer changes.
    pub fn stream_finished() -> Self {
        Self::conflict(
            "stream_finished",
            "the stream has ended: its chat, questions, participants and settings no longer change",
        )
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Validation(_) | Self::Unsupported { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unsupported { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(what) => match *what {
                "stream" => "stream_not_found",
                "course" => "course_not_found",
                "message" => "message_not_found",
                "question" => "question_not_found",
                "participant" => "participant_not_found",
                "route" => "route_not_found",
                _ => "not_found",
            },
            Self::Validation(_) => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The message shown to the client. Internal details stay in the logs.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "an internal error occurred".to_string(),
            Self::Unavailable(_) => "the service is busy; try again shortly".to_string(),
            other => other.to_string(),
        }
    }

    /// Seconds to wait before trying again, for errors a client should retry as is.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// The JSON body: `{ "error": { "code", "message", "details"? } }`.
    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": self.public_message(),
        });
        if let Self::Validation(fields)
        | Self::Unsupported {
            details: fields, ..
        } = self
        {
            error["details"] = serde_json::to_value(fields).unwrap_or_default();
        }
        if let Some(seconds) = self.retry_after_secs() {
            error["retry_after_seconds"] = seconds.into();
        }
        serde_json::json!({ "error": error })
    }
}

/// Collects every field error of one input before failing, so a form shows them all.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of a successful parse; records the error of a failed one.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.errors.push(err);
                None
            }
        }
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_not_returned_to_clients() {
        let err = ApiError::Internal("dynamodb said: secret table arn".into());
        let body = err.body();
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("secret"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn validation_errors_list_every_field() {
        let mut v = Validator::new();
        v.push("title", "must not be empty");
        v.push("quality_settings.frame_rate", "must be one of 24, 30, 60");
        let err = v.finish().unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = err.body();
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn every_error_body_has_the_documented_shape() {
        let errors = [
            ApiError::bad_request("invalid_body", "x"),
            ApiError::Unauthorized("x".into()),
            ApiError::forbidden("not_stream_owner", "x"),
            ApiError::NotFound("stream"),
            ApiError::conflict("stream_not_live", "x"),
            ApiError::invalid("title", "must not be empty"),
            ApiError::RateLimited {
                message: "x".into(),
                retry_after_secs: 2,
            },
            ApiError::Internal("x".into()),
        ];
        for err in errors {
            let parsed: ErrorBody = serde_json::from_value(err.body()).unwrap();
            assert_eq!(parsed.error.code, err.code());
        }
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let err = ApiError::RateLimited {
            message: "slow mode".into(),
            retry_after_secs: 4,
        };
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.body()["error"]["retry_after_seconds"], 4);
    }
}
