//! Chat: sending (HTTP and WebSocket), reading with exact catch-up, moderation.

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::chat::{SendMessageInput, contains_blocked_word};
use crate::model::{ChatMessage, MessageType, StreamStatus, new_id, now};
use crate::store::chat::SenderGuard;
use crate::store::{Store, StoreError};

use super::{PageRequest, access, roles};

/// Numbers taken for one message. A second is needed only when a reader gave the
/// first up because this writer stalled for seconds (see `store::chat`).
const NUMBER_ATTEMPTS: u32 = 3;

fn require_live(status: StreamStatus) -> Result<(), ApiError> {
    access::require_live(status, "chat is open")
}

/// `POST /api/livestream/{id}/chat` and the WebSocket `chat` action.
///
/// Students must have joined and be allowed to chat; slow mode limits each of them to
/// one message per `chat_slow_mode_seconds` (429 with the seconds to wait); messages
/// with a blocked word are refused. The instructor, admins and moderators are exempt
/// from all three and alone may send announcements.
pub async fn send(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    input: SendMessageInput,
) -> Result<ChatMessage, ApiError> {
    let stream = access::load_visible(store, who, stream_id).await?;
    let (text, message_type) = input.validate()?;
    require_live(stream.status)?;
    let moderator = roles::can_moderate(who, &stream);
    if message_type == MessageType::Announcement && !moderator {
        return Err(ApiError::forbidden(
            "announcement_not_allowed",
            "only the instructor and moderators can post announcements",
        ));
    }
    if !moderator {
        if let Some(word) = contains_blocked_word(&text, &stream.blocked_words) {
            return Err(ApiError::invalid(
                "message",
                format!("contains the blocked word {word:?}"),
            ));
        }
        let slow_mode = i64::from(stream.chat_slow_mode_seconds);
        let at = now();
        let guard = SenderGuard {
            user_id: &who.user_id,
            not_after: (slow_mode > 0).then(|| at - chrono::Duration::seconds(slow_mode)),
            now: at,
        };
        match store.claim_chat_turn(&stream.id, &guard).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed) => {
                return Err(sender_refusal(store, who, &stream.id, slow_mode).await);
            }
            Err(e) => return Err(e.into()),
        }
    }
    for _ in 0..NUMBER_ATTEMPTS {
        let seq = match store.take_chat_seq(&stream.id).await {
            Ok(seq) => seq,
            Err(StoreError::ConditionFailed) => {
                let latest = access::load(store, &stream.id).await?;
                require_live(latest.status)?;
                return Err(ApiError::Internal("chat number refused while live".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let message = ChatMessage {
            id: new_id(),
            seq,
            stream_id: stream.id.clone(),
            user_id: who.user_id.clone(),
            display_name: who.display_name.clone(),
            role: who.role,
            message: text.clone(),
            message_type,
            created_at: now(),
            hidden: false,
            hidden_by: None,
            hidden_at: None,
        };
        match store.put_chat(&message).await {
            Ok(()) => return Ok(message),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal(
        "chat numbers kept being given up before the message was written".into(),
    ))
}

/// Why the sender's turn was refused.
async fn sender_refusal(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    slow_mode: i64,
) -> ApiError {
    let participant = match store.participant(stream_id, &who.user_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return ApiError::forbidden("not_joined", "join the stream before taking part"),
        Err(e) => return e.into(),
    };
    if !participant.is_watching {
        return ApiError::forbidden("not_joined", "join the stream before taking part");
    }
    if !participant.can_chat {
        return ApiError::forbidden("chat_disabled", "the instructor has turned off your chat");
    }
    let wait = participant
        .last_chat_at
        .map(|last| (last + chrono::Duration::seconds(slow_mode) - now()).num_milliseconds())
        .unwrap_or(0);
    ApiError::RateLimited {
        message: format!("slow mode: one message every {slow_mode} seconds"),
        retry_after_secs: u64::try_from((wait + 999) / 1000).unwrap_or(1).max(1),
    }
}

/// The messages after `since` that the caller may see, oldest first, with the
/// `seq` to pass as `since` next (`last_seq`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ChatPage {
    #[schemars(with = "Vec<crate::model::ChatMessage>")]
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    /// The highest `seq` read, hidden messages included: resume from here.
    pub last_seq: i64,
}

/// `GET /api/livestream/{id}/chat` and the WebSocket `catch_up` action. A cursor, when
/// given, continues where the page that returned it ended.
pub async fn list(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    since: i64,
    page: PageRequest,
) -> Result<ChatPage, ApiError> {
    if since < 0 {
        return Err(ApiError::invalid(
            "since",
            "must be a sequence number (0 or more)",
        ));
    }
    let stream = access::load_visible(store, who, stream_id).await?;
    let moderator = roles::can_moderate(who, &stream);
    let since = match &page.cursor {
        Some(cursor) => since.max(store.chat_cursor_seq(&stream.id, cursor)?),
        None => since,
    };
    let read = store.chat_after(&stream.id, since, page.limit).await?;
    Ok(ChatPage {
        items: read
            .messages
            .into_iter()
            .filter_map(|m| m.view(moderator))
            .collect(),
        next_cursor: read
            .has_more
            .then(|| Store::chat_cursor(&stream.id, read.last_seq).encode()),
        last_seq: read.last_seq,
    })
}

/// Parses a message id from a path: its `seq`.
pub fn parse_seq(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or(ApiError::NotFound("message"))
}

/// `POST /api/livestream/{id}/chat/{seq}/hide`: moderators hide a message for
/// everyone but moderators. A hidden pinned message is unpinned.
pub async fn hide(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    seq: &str,
) -> Result<ChatMessage, ApiError> {
    let stream = access::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    let seq = parse_seq(seq)?;
    access::require_open(&stream)?;
    let message = match store.hide_chat(&stream.id, seq, &who.user_id, now()).await {
        Ok(m) => m,
        Err(StoreError::ConditionFailed) => return Err(ApiError::NotFound("message")),
        Err(e) => return Err(e.into()),
    };
    store.unpin_chat(&stream.id, Some(seq), now()).await?;
    Ok(message)
}

/// `POST /api/livestream/{id}/chat/{seq}/pin`: pins one visible message.
pub async fn pin(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    seq: &str,
) -> Result<crate::model::Stream, ApiError> {
    let stream = access::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    access::require_open(&stream)?;
    let seq = parse_seq(seq)?;
    match store.pin_chat(&stream.id, seq, now()).await {
        Ok(()) => {}
        Err(e @ StoreError::TransactionCancelled(_)) if e.failed_condition_at(1) => {
            return Err(match store.chat_message(&stream.id, seq).await? {
                Some(_) => {
                    ApiError::conflict("message_hidden", "a hidden message cannot be pinned")
                }
                None => ApiError::NotFound("message"),
            });
        }
        Err(e) => return Err(e.into()),
    }
    access::load(store, &stream.id).await
}

/// `DELETE /api/livestream/{id}/chat/pin`.
pub async fn unpin(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<crate::model::Stream, ApiError> {
    let stream = access::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    access::require_open(&stream)?;
    store.unpin_chat(&stream.id, None, now()).await?;
    access::load(store, &stream.id).await
}
