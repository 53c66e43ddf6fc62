//! Chat: sending (HTTP and WebSocket), reading with exact catch-up, moderation.

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::chat::{SendMessageInput, contains_blocked_word};
use crate::model::{ChatMessage, MessageType, StreamStatus, new_id, now, parse_id};
use crate::store::chat::{ChatWrite, ChatWritten, SenderGuard};
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
///
/// A message that passes reaches the store in two round trips: the number, which
/// returns the stream's rules, then the message with the sender's turn (see
/// `store::chat`). A refusal after the number leaves the number as a gap.
pub async fn send(
    store: &Store,
    who: &Identity,
    stream_id: &str,
    input: SendMessageInput,
) -> Result<ChatMessage, ApiError> {
    let id = parse_id(stream_id, "stream")?;
    let (text, message_type) = input.validate()?;
    for _ in 0..NUMBER_ATTEMPTS {
        let (seq, stream) = match store.take_chat_seq(&id).await {
            Ok(taken) => taken,
            Err(StoreError::ConditionFailed) => return Err(why_no_number(store, who, &id).await),
            Err(e) => return Err(e.into()),
        };
        let stream_id = stream.id.clone();
        let refuse = |err: ApiError| async move {
            match store.release_chat_seq(&stream_id, seq).await {
                Ok(()) => err,
                Err(e) => e.into(),
            }
        };
        let moderator = roles::can_moderate(who, &stream);
        let privileged = access::is_owner(who, &stream) || who.is_admin();
        if message_type == MessageType::Announcement && !moderator {
            return Err(refuse(ApiError::forbidden(
                "announcement_not_allowed",
                "only the instructor and moderators can post announcements",
            ))
            .await);
        }
        let slow_mode = i64::from(stream.chat_slow_mode_seconds);
        let at = now();
        if !moderator && let Some(word) = contains_blocked_word(&text, &stream.blocked_words) {
            return Err(refuse(ApiError::invalid(
                "message",
                format!("contains the blocked word {word:?}"),
            ))
            .await);
        }
        let message = ChatMessage {
            id: new_id(),
            seq,
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
        let write = ChatWrite {
            message: &message,
            turn: (!moderator).then(|| SenderGuard {
                user_id: &who.user_id,
                not_after: (slow_mode > 0).then(|| at - chrono::Duration::seconds(slow_mode)),
                now: at,
            }),
            enrolled_in: (!stream.is_public && !privileged).then_some(stream.course_id.as_str()),
            replay: stream.is_recording,
        };
        match store.write_chat(write).await? {
            ChatWritten::Written => return Ok(message),
            ChatWritten::NumberGivenUp => continue,
            ChatWritten::TurnRefused => {
                let refusal = sender_refusal(store, who, &stream.id, slow_mode).await;
                return Err(refuse(refusal).await);
            }
            ChatWritten::NotEnrolled => return Err(refuse(access::private_stream()).await),
        }
    }
    Err(ApiError::Internal(
        "chat numbers kept being given up before the message was written".into(),
    ))
}

/// Why no number could be taken: the stream is missing, not visible, or not live.
async fn why_no_number(store: &Store, who: &Identity, stream_id: &str) -> ApiError {
    match access::load_visible(store, who, stream_id).await {
        Ok(stream) => match require_live(stream.status) {
            Err(e) => e,
            Ok(()) => ApiError::Internal("chat number refused while live".into()),
        },
        Err(e) => e,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::store::{Update, keys, n};
    use crate::testing::{TEACHER, TestEnv, identity, teacher_stream};

    fn text(message: &str) -> SendMessageInput {
        SendMessageInput {
            message: message.into(),
            message_type: None,
        }
    }

    async fn slow_mode(store: &Store, stream_id: &str, seconds: i64) {
        let update = Update::new()
            .exists()
            .set("chat_slow_mode_seconds", n(seconds));
        store
            .update(keys::stream_pk(stream_id), keys::STREAM_SK.into(), update)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_message_that_passes_takes_two_store_round_trips() {
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        let student = identity("student-1", Role::Student);
        crate::service::participation::join(env.store(), &student, &stream.id)
            .await
            .unwrap();
        let (store, operations) = env.counting_store();

        let sent = send(&store, &student, &stream.id, text("hello"))
            .await
            .unwrap();
        assert_eq!(sent.seq, 1);
        assert_eq!(
            operations.total(),
            2,
            "a number, then the message with the turn"
        );
        assert_eq!(operations.count("UpdateItem"), 1);
        assert_eq!(operations.count("TransactWriteItems"), 1);

        let teacher = identity(TEACHER, Role::Teacher);
        send(&store, &teacher, &stream.id, text("welcome"))
            .await
            .unwrap();
        assert_eq!(operations.total(), 4, "the instructor has no turn to take");
        assert_eq!(operations.count("PutItem"), 1);
    }

    #[tokio::test]
    async fn a_refused_message_leaves_a_gap_at_once_and_is_not_counted() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, true).await;
        slow_mode(store, &stream.id, 60).await;
        let student = identity("student-1", Role::Student);
        crate::service::participation::join(store, &student, &stream.id)
            .await
            .unwrap();
        let outsider = identity("student-2", Role::Student);

        send(store, &student, &stream.id, text("first"))
            .await
            .unwrap();
        let slowed = send(store, &student, &stream.id, text("second"))
            .await
            .unwrap_err();
        assert!(matches!(slowed, ApiError::RateLimited { .. }), "{slowed:?}");
        let not_joined = send(store, &outsider, &stream.id, text("hi"))
            .await
            .unwrap_err();
        assert_eq!(not_joined.code(), "not_joined");
        let teacher = identity(TEACHER, Role::Teacher);
        send(store, &teacher, &stream.id, text("after"))
            .await
            .unwrap();

        // Readers are not held back by the refused numbers: they are gaps already.
        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        assert_eq!(read.last_seq, 4);
        let texts: Vec<_> = read.messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(texts, ["first", "after"]);
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!((stream.chat_seq, stream.chat_messages_count), (4, 2));
    }

    #[tokio::test]
    async fn a_private_stream_refuses_students_who_left_its_course() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, false).await;
        let outsider = identity("student-9", Role::Student);
        let err = send(store, &outsider, &stream.id, text("hi"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "stream_private");
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(stream.chat_messages_count, 0);
    }

    #[tokio::test]
    async fn the_stop_settles_the_chat_a_killed_sender_left_a_number_in() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, true).await;
        let teacher = identity(TEACHER, Role::Teacher);
        send(store, &teacher, &stream.id, text("one"))
            .await
            .unwrap();
        // A sender that took a number and died before writing.
        let (dead, _) = store.take_chat_seq(&stream.id).await.unwrap();
        send(store, &teacher, &stream.id, text("three"))
            .await
            .unwrap();

        let ended = crate::service::streams::stop(store, None, &teacher, &stream.id)
            .await
            .unwrap();
        assert_eq!((ended.chat_seq, ended.chat_messages_count), (3, 2));
        let stats = crate::service::stats::get(store, &teacher, &stream.id)
            .await
            .unwrap();
        assert_eq!(stats.chat_messages_count, 2);
        // The dead sender's number is closed: a late write of it cannot land.
        assert!(
            store
                .chat_message(&stream.id, dead)
                .await
                .unwrap()
                .is_none()
        );
        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        assert_eq!((read.last_seq, read.messages.len()), (3, 2));
    }
}
