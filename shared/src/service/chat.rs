//! Chat: sending (HTTP and WebSocket), reading with exact catch-up, moderation.

use std::time::Duration;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::chat::{SendMessageInput, contains_blocked_word};
use crate::model::{ChatMessage, MessageType, StreamStatus, new_id, now};
use crate::store::chat::{CHAT_PARTICIPANT_ACTION, CHAT_STREAM_ACTION, SenderGuard};
use crate::store::{Store, StoreError};

use super::{PageRequest, roles, streams};

/// Attempts before a chat storm on one stream is reported as busy.
const MAX_ATTEMPTS: u32 = 20;

fn not_live(status: StreamStatus) -> ApiError {
    ApiError::conflict(
        "stream_not_live",
        format!(
            "chat is open only while the stream is live; it is {}",
            status.as_str()
        ),
    )
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
    let stream = streams::load_visible(store, who, stream_id).await?;
    let (text, message_type) = input.validate()?;
    if stream.status != StreamStatus::Live {
        return Err(not_live(stream.status));
    }
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
        let participant = roles::require_joined(store, who, &stream).await?;
        if !participant.can_chat {
            return Err(ApiError::forbidden(
                "chat_disabled",
                "the instructor has turned off your chat",
            ));
        }
    }
    let mut stream = stream;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            let jitter: u64 = rand::random::<u64>() % 10;
            tokio::time::sleep(Duration::from_millis(
                u64::from(attempt.min(10)) * 2 + jitter,
            ))
            .await;
            stream = store
                .stream(&stream.id)
                .await?
                .ok_or(ApiError::NotFound("stream"))?;
            if stream.status != StreamStatus::Live {
                return Err(not_live(stream.status));
            }
        }
        let at = now();
        let slow_mode = i64::from(stream.chat_slow_mode_seconds);
        let sender = (!moderator).then(|| SenderGuard {
            user_id: &who.user_id,
            not_after: (slow_mode > 0).then(|| at - chrono::Duration::seconds(slow_mode)),
            now: at,
        });
        let message = ChatMessage {
            id: new_id(),
            seq: stream.chat_seq + 1,
            stream_id: stream.id.clone(),
            user_id: who.user_id.clone(),
            display_name: who.display_name.clone(),
            role: who.role,
            message: text.clone(),
            message_type,
            created_at: at,
            hidden: false,
            hidden_by: None,
            hidden_at: None,
        };
        match store.append_chat(&message, sender).await {
            Ok(()) => return Ok(message),
            Err(e) if e.failed_condition_at(CHAT_PARTICIPANT_ACTION) => {
                return Err(sender_refusal(store, who, &stream.id, slow_mode).await);
            }
            // Another message took the sequence number (or the stream stopped): re-read.
            Err(e) if e.failed_condition_at(CHAT_STREAM_ACTION) => continue,
            Err(StoreError::Busy(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal("chat append kept conflicting".into()))
}

/// Why the sender's part of the chat transaction failed.
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
#[derive(Debug, serde::Serialize)]
pub struct ChatPage {
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    /// The highest `seq` read, hidden messages included: resume from here.
    pub last_seq: i64,
}

/// `GET /api/livestream/{id}/chat` and the WebSocket `catch_up` action.
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
    let stream = streams::load_visible(store, who, stream_id).await?;
    let moderator = roles::can_moderate(who, &stream);
    let (messages, next) = store
        .chat_page(&stream.id, since, page.cursor.as_ref(), page.limit)
        .await?;
    let last_seq = messages.last().map_or(since, |m| m.seq);
    Ok(ChatPage {
        items: messages
            .into_iter()
            .filter_map(|m| m.view(moderator))
            .collect(),
        next_cursor: next.map(|c| c.encode()),
        last_seq,
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
    let stream = streams::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    let seq = parse_seq(seq)?;
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
    let stream = streams::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
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
    streams::load(store, &stream.id).await
}

/// `DELETE /api/livestream/{id}/chat/pin`.
pub async fn unpin(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<crate::model::Stream, ApiError> {
    let stream = streams::load(store, stream_id).await?;
    roles::require_moderator(who, &stream)?;
    store.unpin_chat(&stream.id, None, now()).await?;
    streams::load(store, &stream.id).await
}
