//! Joining and leaving over HTTP, participants' permissions, interaction settings.

use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::{ApiError, FieldError, Validator};
use crate::model::{Participant, Session, Stream, now, parse_user_id};
use crate::store::{Page, Store, StoreError, Update, keys};

use super::{PageRequest, access, presence, roles};

/// The answer to join and leave: the caller's participation and the live count.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Presence {
    /// `None` for the instructor, who is never counted as a viewer.
    pub participant: Option<Participant>,
    pub viewer_count: i64,
}

/// `POST /api/livestream/{id}/join`: idempotent; only live streams the caller may see.
pub async fn join(store: &Store, who: &Identity, stream_id: &str) -> Result<Presence, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let participant = presence::enter(store, who, &stream, &Session::Http).await?;
    let stream = access::load(store, &stream.id).await?;
    Ok(Presence {
        participant,
        viewer_count: stream.viewer_count,
    })
}

/// `POST /api/livestream/{id}/leave`: idempotent; open WebSocket tabs keep the user
/// watching.
pub async fn leave(store: &Store, who: &Identity, stream_id: &str) -> Result<Presence, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let participant = presence::exit(store, &stream.id, &who.user_id, &Session::Http).await?;
    let stream = access::load(store, &stream.id).await?;
    Ok(Presence {
        participant,
        viewer_count: stream.viewer_count,
    })
}

/// The body of `PUT /api/livestream/{id}/participants/{user_id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "is_moderator": true }))]
pub struct PermissionsInput {
    pub is_moderator: Option<bool>,
    pub can_chat: Option<bool>,
    pub can_ask_questions: Option<bool>,
}

/// The instructor (or an admin) changes what a participant may do.
pub async fn update_permissions(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    user_id: &str,
    input: PermissionsInput,
) -> Result<Participant, ApiError> {
    let stream = access::load(store, stream_id).await?;
    if !access::is_owner(who, &stream) && !who.is_admin() {
        return Err(ApiError::forbidden(
            "not_stream_owner",
            "only the stream's instructor can change permissions",
        ));
    }
    let user_id = parse_user_id(user_id).map_err(|_| ApiError::NotFound("participant"))?;
    access::require_open(&stream)?;
    if input.is_moderator.is_none() && input.can_chat.is_none() && input.can_ask_questions.is_none()
    {
        return Err(ApiError::Validation(
            ["is_moderator", "can_chat", "can_ask_questions"]
                .into_iter()
                .map(|f| FieldError::new(f, "give at least one of the three as true or false"))
                .collect(),
        ));
    }
    match store
        .set_participant_permissions(
            &stream.id,
            &user_id,
            input.is_moderator,
            input.can_chat,
            input.can_ask_questions,
        )
        .await
    {
        Ok(p) => Ok(p),
        Err(StoreError::ConditionFailed) => Err(ApiError::NotFound("participant")),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/livestream/{id}/participants`: for the instructor and moderators.
pub async fn list(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    page: PageRequest,
) -> Result<Page<Participant>, ApiError> {
    let stream = access::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    let (items, next) = store
        .participants(&stream.id, page.cursor.as_ref(), page.limit)
        .await?;
    Ok(Page {
        items: items
            .into_iter()
            .map(|mut p| {
                p.sessions.clear();
                p
            })
            .collect(),
        next_cursor: next.map(|c| c.encode()),
    })
}

/// The body of `PUT /api/livestream/{id}/settings`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({ "chat_slow_mode_seconds": 10, "blocked_words": ["spam"], "questions_require_approval": true }))]
pub struct SettingsInput {
    /// Seconds between two messages of one user; 0 turns slow mode off.
    #[schemars(range(min = 0, max = 300))]
    pub chat_slow_mode_seconds: Option<i64>,
    /// Replaces the list; compared case-insensitively, whole words.
    #[schemars(
        length(max = 100),
        inner(
            length(min = 1, max = 50),
            pattern(crate::model::text::pattern::LINE_REQUIRED)
        )
    )]
    pub blocked_words: Option<Vec<String>>,
    pub questions_require_approval: Option<bool>,
}

pub const MAX_SLOW_MODE_SECONDS: i64 = 300;
pub const MAX_BLOCKED_WORDS: usize = 100;

/// The instructor changes slow mode, the blocked words and the question approval queue.
pub async fn update_settings(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    input: SettingsInput,
) -> Result<Stream, ApiError> {
    let stream = access::load_owned(store, who, stream_id).await?;
    let mut v = Validator::new();
    let mut update = Update::new()
        .exists()
        .set("updated_at", crate::store::s(now().to_rfc3339()));
    if let Some(secs) = input.chat_slow_mode_seconds {
        if (0..=MAX_SLOW_MODE_SECONDS).contains(&secs) {
            update = update.set("chat_slow_mode_seconds", crate::store::n(secs));
        } else {
            v.push(
                "chat_slow_mode_seconds",
                format!("must be from 0 to {MAX_SLOW_MODE_SECONDS}"),
            );
        }
    }
    if let Some(words) = &input.blocked_words {
        let mut cleaned: Vec<String> = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim().to_lowercase();
            if w.is_empty() || w.chars().count() > 50 || w.chars().any(char::is_control) {
                v.push(format!("blocked_words[{i}]"), "must be 1 to 50 characters");
            } else if !cleaned.contains(&w) {
                cleaned.push(w);
            }
        }
        if cleaned.len() > MAX_BLOCKED_WORDS {
            v.push(
                "blocked_words",
                format!("at most {MAX_BLOCKED_WORDS} words"),
            );
        }
        update = update.set(
            "blocked_words",
            aws_sdk_dynamodb::types::AttributeValue::L(
                cleaned.into_iter().map(crate::store::s).collect(),
            ),
        );
    }
    if let Some(on) = input.questions_require_approval {
        update = update.set(
            "questions_require_approval",
            aws_sdk_dynamodb::types::AttributeValue::Bool(on),
        );
    }
    v.finish()?;
    access::require_open(&stream)?;
    let update = update.while_open();
    let updated = if input.chat_slow_mode_seconds.is_some() || input.blocked_words.is_some() {
        store
            .update_chat_rules(&stream.id, update)
            .await
            .map(|_| ())
    } else {
        store
            .update(keys::stream_pk(&stream.id), keys::STREAM_SK.into(), update)
            .await
            .map(|_| ())
    };
    if let Err(err) = updated {
        return Err(store.finished_or(&stream.id, err).await.into());
    }
    access::load_with_chat(store, &stream.id).await
}
