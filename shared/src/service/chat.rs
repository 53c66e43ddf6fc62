//! Chat: sending (HTTP and WebSocket), reading with exact catch-up, moderation.

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::chat::{SendMessageInput, contains_blocked_word};
use crate::model::{ChatMessage, MessageType, Stream, StreamStatus, new_id, now, parse_id};
use crate::store::chat::{ChatTip, ChatWrite, ChatWritten, SenderGuard};
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
/// In a quiet chat a message reaches the store in one round trip, written at the tip
/// this process last left the stream's chat at; otherwise in two: the number, which
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
    if let Some(tip) = store.chat_tip(&id)
        && let Some(sent) = send_at_tip(store, who, &tip, &text, message_type).await?
    {
        return Ok(sent);
    }
    for _ in 0..NUMBER_ATTEMPTS {
        let (seq, stream) = match store.take_chat_seq(&id).await {
            Ok(taken) => taken,
            Err(StoreError::ConditionFailed) => return Err(why_no_number(store, who, &id).await),
            Err(e) => return Err(e.into()),
        };
        let numbered_in = &stream.id;
        let refuse = |err: ApiError| async move {
            match store.release_chat_seq(numbered_in, seq).await {
                Ok(()) => err,
                Err(e) => e.into(),
            }
        };
        let message = match compose(who, &stream, &text, message_type, seq) {
            Ok(message) => message,
            Err(refusal) => return Err(refuse(refusal).await),
        };
        match store.write_chat(chat_write(who, &stream, &message)).await? {
            ChatWritten::Written => return Ok(message),
            ChatWritten::NumberGivenUp | ChatWritten::TipMoved => continue,
            ChatWritten::TurnRefused => {
                let refusal = sender_refusal(store, who, &stream).await;
                return Err(refuse(refusal).await);
            }
            ChatWritten::NotEnrolled => return Err(refuse(access::private_stream()).await),
        }
    }
    Err(ApiError::Internal(
        "chat numbers kept being given up before the message was written".into(),
    ))
}

/// The message at the stream's tip, if the tip still holds. `None`: the message is
/// for the numbered path, which decides it on the stream as it is now (a refusal
/// decided on the tip's rules could be stale, so it is left to that path too).
async fn send_at_tip(
    store: &Store,
    who: &Identity,
    tip: &ChatTip,
    text: &str,
    message_type: MessageType,
) -> Result<Option<ChatMessage>, ApiError> {
    let stream = &tip.stream;
    let Ok(message) = compose(who, stream, text, message_type, tip.next_seq()) else {
        return Ok(None);
    };
    match store
        .write_chat_at_tip(tip, chat_write(who, stream, &message))
        .await?
    {
        ChatWritten::Written => Ok(Some(message)),
        ChatWritten::TipMoved | ChatWritten::NumberGivenUp => Ok(None),
        // The tip's rules held, so these refusals are today's; no number was taken.
        ChatWritten::TurnRefused => Err(sender_refusal(store, who, stream).await),
        ChatWritten::NotEnrolled => Err(access::private_stream()),
    }
}

/// Message number `seq` from `who` under the stream's rules, or why it is refused.
fn compose(
    who: &Identity,
    stream: &Stream,
    text: &str,
    message_type: MessageType,
    seq: i64,
) -> Result<ChatMessage, ApiError> {
    require_live(stream.status)?;
    let moderator = roles::can_moderate(who, stream);
    if message_type == MessageType::Announcement && !moderator {
        return Err(ApiError::forbidden(
            "announcement_not_allowed",
            "only the instructor and moderators can post announcements",
        ));
    }
    if !moderator && let Some(word) = contains_blocked_word(text, &stream.blocked_words) {
        return Err(ApiError::invalid(
            "message",
            format!("contains the blocked word {word:?}"),
        ));
    }
    Ok(ChatMessage {
        id: new_id(),
        seq,
        stream_id: stream.id.clone(),
        user_id: who.user_id.clone(),
        display_name: who.display_name.clone(),
        role: who.role,
        message: text.to_string(),
        message_type,
        created_at: now(),
        hidden: false,
        hidden_by: None,
        hidden_at: None,
    })
}

/// What the store must check and write with `message`: the sender's turn (not for
/// moderators), their enrollment (private streams), the replay index.
fn chat_write<'a>(
    who: &'a Identity,
    stream: &'a Stream,
    message: &'a ChatMessage,
) -> ChatWrite<'a> {
    let moderator = roles::can_moderate(who, stream);
    let privileged = access::is_owner(who, stream) || who.is_admin();
    let slow_mode = i64::from(stream.chat_slow_mode_seconds);
    let at = message.created_at;
    ChatWrite {
        message,
        turn: (!moderator).then(|| SenderGuard {
            user_id: &who.user_id,
            not_after: (slow_mode > 0).then(|| at - chrono::Duration::seconds(slow_mode)),
            now: at,
        }),
        enrolled_in: (!stream.is_public && !privileged).then_some(stream.course_id.as_str()),
        replay: stream.is_recording,
    }
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
async fn sender_refusal(store: &Store, who: &Identity, stream: &Stream) -> ApiError {
    let slow_mode = i64::from(stream.chat_slow_mode_seconds);
    let participant = match store.participant(&stream.id, &who.user_id).await {
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
        store.update_chat_rules(stream_id, update).await.unwrap();
    }

    /// The same table reached from another process (another Lambda instance): it
    /// knows no chat tips.
    fn another_process(store: &Store) -> Store {
        Store::new(store.client().clone(), store.table())
    }

    /// The stream's `chat_seq` and `chat_messages_count` as stored.
    async fn chat_counters(store: &Store, stream_id: &str) -> (i64, i64) {
        let stream = store.stream(stream_id).await.unwrap().unwrap();
        let stream = store.with_chat(stream).await.unwrap();
        (stream.chat_seq, stream.chat_messages_count)
    }

    /// A live public recorded class with `student-1` joined in it.
    async fn class_with_a_student(store: &Store) -> (Stream, Identity) {
        let stream = teacher_stream(store, true, true).await;
        let student = identity("student-1", Role::Student);
        crate::service::participation::join(store, &student, &stream.id)
            .await
            .unwrap();
        (stream, student)
    }

    #[tokio::test]
    async fn a_first_message_takes_two_store_round_trips_and_the_next_in_a_quiet_chat_one() {
        let env = TestEnv::start().await;
        let (stream, student) = class_with_a_student(env.store()).await;
        let teacher = identity(TEACHER, Role::Teacher);
        let (store, operations) = env.counting_store();

        let sent = send(&store, &student, &stream.id, text("hello"))
            .await
            .unwrap();
        assert_eq!(sent.seq, 1);
        assert_eq!(
            (
                operations.count("UpdateItem"),
                operations.count("GetItem"),
                operations.count("TransactWriteItems")
            ),
            (1, 1, 1),
            "a number with the stream read beside it, then the message with the turn"
        );
        let welcome = send(&store, &teacher, &stream.id, text("welcome"))
            .await
            .unwrap();
        let again = send(&store, &student, &stream.id, text("thanks"))
            .await
            .unwrap();
        assert_eq!((welcome.seq, again.seq), (2, 3));
        assert_eq!(
            operations.total(),
            5,
            "each message after it: one transaction at the tip"
        );

        // Another process chats meanwhile: the tip is stale, the write at it changes
        // nothing, and the message takes a number.
        send(
            &env.store().clone(),
            &teacher,
            &stream.id,
            text("elsewhere"),
        )
        .await
        .unwrap();
        let after = send(&store, &student, &stream.id, text("after"))
            .await
            .unwrap();
        assert_eq!(after.seq, 5);
        assert_eq!(
            operations.total(),
            9,
            "a refused transaction, then the number, the read and the message"
        );
        // The tip rests: the next message is numbered without trying it.
        let next = send(&store, &student, &stream.id, text("next"))
            .await
            .unwrap();
        assert_eq!(next.seq, 6);
        assert_eq!(operations.total(), 12);

        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        let numbers: Vec<_> = read.messages.iter().map(|m| m.seq).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
        assert_eq!(chat_counters(&store, &stream.id).await, (6, 6));
    }

    #[tokio::test]
    async fn messages_numbered_and_at_the_tip_leave_the_stream_item_untouched() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, student) = class_with_a_student(store).await;
        let mut changes = env.change_stream().await;

        for message in ["numbered", "at the tip", "at the tip again"] {
            send(store, &student, &stream.id, text(message))
                .await
                .unwrap();
        }
        send(
            &another_process(store),
            &student,
            &stream.id,
            text("numbered"),
        )
        .await
        .unwrap();

        let records = changes.next_records(100).await.unwrap();
        let sort_keys: Vec<String> = records
            .iter()
            .filter_map(|r| match r.change.keys.get(crate::table::SK)? {
                serde_dynamo::AttributeValue::S(sk) => Some(sk.clone()),
                _ => None,
            })
            .collect();
        assert!(
            !sort_keys.iter().any(|sk| sk == keys::STREAM_SK),
            "{sort_keys:?}"
        );
        assert_eq!(
            sort_keys
                .iter()
                .filter(|sk| sk.starts_with(keys::CHAT_PREFIX))
                .count(),
            4
        );
        assert_eq!(chat_counters(store, &stream.id).await, (4, 4));
        let view = crate::service::streams::get(store, &student, &stream.id)
            .await
            .unwrap();
        assert_eq!(
            (
                view["chat_seq"].as_i64(),
                view["chat_messages_count"].as_i64()
            ),
            (Some(4), Some(4))
        );
    }

    #[tokio::test]
    async fn a_moderator_removed_in_another_process_is_held_to_the_rules_at_once() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, true).await;
        let moderator = identity("student-1", Role::Student);
        crate::service::participation::join(store, &moderator, &stream.id)
            .await
            .unwrap();
        store
            .set_participant_permissions(&stream.id, &moderator.user_id, Some(true), None, None)
            .await
            .unwrap();
        let teacher = identity(TEACHER, Role::Teacher);
        let settings = crate::service::participation::SettingsInput {
            chat_slow_mode_seconds: None,
            blocked_words: Some(vec!["spam".into()]),
            questions_require_approval: None,
        };
        crate::service::participation::update_settings(store, &teacher, &stream.id, settings)
            .await
            .unwrap();
        // This process's tip: a moderator may send a blocked word.
        let (store, operations) = env.counting_store();
        let store = &store;
        send(store, &moderator, &stream.id, text("spam, as an example"))
            .await
            .unwrap();
        let before = operations.total();
        send(store, &moderator, &stream.id, text("spam again"))
            .await
            .unwrap();
        assert_eq!(operations.total() - before, 1, "written at the tip");

        another_process(store)
            .set_participant_permissions(&stream.id, &moderator.user_id, Some(false), None, None)
            .await
            .unwrap();
        let refused = send(store, &moderator, &stream.id, text("more spam"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "validation_failed", "{refused:?}");
        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        assert_eq!(read.messages.len(), 2);
    }

    #[tokio::test]
    async fn a_class_live_before_chat_heads_existed_numbers_on_from_its_own_count() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, student) = class_with_a_student(store).await;
        // As such a class was stored: numbered in its item, without a head.
        for seq in 1..=3 {
            let mut message = compose(&student, &stream, "before", MessageType::Text, seq).unwrap();
            message.created_at = now();
            store.put_chat(&message).await.unwrap();
        }
        store
            .client()
            .delete_item()
            .table_name(store.table())
            .set_key(Some(keys::key(
                keys::stream_pk(&stream.id),
                keys::CHAT_HEAD_SK.into(),
            )))
            .send()
            .await
            .unwrap();
        let numbered = Update::new()
            .exists()
            .set("chat_seq", n(3))
            .set("chat_messages_count", n(3));
        store
            .update(
                keys::stream_pk(&stream.id),
                keys::STREAM_SK.into(),
                numbered,
            )
            .await
            .unwrap();

        let sent = send(&another_process(store), &student, &stream.id, text("after"))
            .await
            .unwrap();
        assert_eq!(sent.seq, 4);
        assert_eq!(chat_counters(store, &stream.id).await, (4, 4));
        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        assert_eq!(read.messages.len(), 4);
    }

    #[tokio::test]
    async fn a_stop_that_did_not_go_through_leaves_the_chat_open() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, student) = class_with_a_student(store).await;
        send(store, &student, &stream.id, text("before"))
            .await
            .unwrap();

        // The end of an abandoned push that is not reconnecting (it came back).
        let stopped = store
            .stop_stream(
                &stream.id,
                stream.started_at.unwrap(),
                now(),
                Some("push-1"),
            )
            .await;
        assert!(
            matches!(stopped, Err(StoreError::ConditionFailed)),
            "{stopped:?}"
        );

        let sent = send(store, &student, &stream.id, text("after"))
            .await
            .unwrap();
        assert_eq!(sent.seq, 2);
        assert_eq!(chat_counters(store, &stream.id).await, (2, 2));
    }

    #[tokio::test]
    async fn a_message_at_a_tip_whose_rules_changed_is_decided_on_the_new_rules() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, student) = class_with_a_student(store).await;
        send(store, &student, &stream.id, text("spam is fine"))
            .await
            .unwrap();
        let teacher = identity(TEACHER, Role::Teacher);
        let settings = crate::service::participation::SettingsInput {
            chat_slow_mode_seconds: None,
            blocked_words: Some(vec!["spam".into()]),
            questions_require_approval: None,
        };
        crate::service::participation::update_settings(
            &another_process(store),
            &teacher,
            &stream.id,
            settings,
        )
        .await
        .unwrap();

        let refused = send(store, &student, &stream.id, text("more spam"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "validation_failed", "{refused:?}");
        let read = store.chat_after(&stream.id, 0, 100).await.unwrap();
        assert_eq!((read.last_seq, read.messages.len()), (2, 1));
    }

    #[tokio::test]
    async fn a_tip_holds_with_moderators_blocked_words_and_slow_mode_set() {
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        slow_mode(env.store(), &stream.id, 30).await;
        let student = identity("student-1", Role::Student);
        let moderator = identity("student-2", Role::Student);
        for who in [&student, &moderator] {
            crate::service::participation::join(env.store(), who, &stream.id)
                .await
                .unwrap();
        }
        env.store()
            .set_participant_permissions(&stream.id, &moderator.user_id, Some(true), None, None)
            .await
            .unwrap();
        let settings = crate::service::participation::SettingsInput {
            chat_slow_mode_seconds: None,
            blocked_words: Some(vec!["spam".into()]),
            questions_require_approval: None,
        };
        let teacher = identity(TEACHER, Role::Teacher);
        crate::service::participation::update_settings(env.store(), &teacher, &stream.id, settings)
            .await
            .unwrap();
        let (store, operations) = env.counting_store();

        send(&store, &moderator, &stream.id, text("first"))
            .await
            .unwrap();
        let before = operations.total();
        send(&store, &student, &stream.id, text("hi"))
            .await
            .unwrap();
        // A moderator may send a blocked word; the tip holds for them too.
        send(&store, &moderator, &stream.id, text("spam, as an example"))
            .await
            .unwrap();
        assert_eq!(operations.total() - before, 2, "one round trip each");
        assert_eq!(operations.count("TransactWriteItems"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_racing_at_their_tips_number_every_message_once_without_gaps() {
        const PROCESSES: usize = 4;
        const SENDERS_EACH: usize = 10;
        const ROUNDS: usize = 5;
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        let processes: Vec<Store> = (0..PROCESSES)
            .map(|_| another_process(env.store()))
            .collect();
        let mut senders = Vec::new();
        for (p, process) in processes.iter().enumerate() {
            for i in 0..SENDERS_EACH {
                let who = identity(&format!("student-{p}-{i}"), Role::Student);
                crate::service::participation::join(env.store(), &who, &stream.id)
                    .await
                    .unwrap();
                senders.push((process.clone(), who));
            }
        }
        // Every round after the first finds tips in every process, all stale but one.
        for round in 0..ROUNDS {
            let sends = senders.iter().map(|(store, who)| {
                let (store, who, stream_id) = (store.clone(), who.clone(), stream.id.clone());
                tokio::spawn(async move {
                    send(&store, &who, &stream_id, text(&format!("round {round}"))).await
                })
            });
            for sent in futures::future::join_all(sends).await {
                sent.unwrap().unwrap();
            }
        }

        let total = (PROCESSES * SENDERS_EACH * ROUNDS) as i64;
        let read = env.store().chat_after(&stream.id, 0, 1000).await.unwrap();
        let numbers: Vec<i64> = read.messages.iter().map(|m| m.seq).collect();
        assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
        assert_eq!(chat_counters(env.store(), &stream.id).await, (total, total));
    }

    #[tokio::test]
    async fn a_refused_message_takes_no_number_at_the_tip_and_leaves_a_gap_after_one() {
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
        assert_eq!(
            chat_counters(store, &stream.id).await,
            (1, 1),
            "refused at the tip: no number taken"
        );

        // Processes without the tip take a number first and leave it as a gap.
        let slowed = send(&another_process(store), &student, &stream.id, text("third"))
            .await
            .unwrap_err();
        assert!(matches!(slowed, ApiError::RateLimited { .. }), "{slowed:?}");
        let not_joined = send(&another_process(store), &outsider, &stream.id, text("hi"))
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
        assert_eq!(chat_counters(store, &stream.id).await, (4, 2));
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
    async fn a_student_who_left_the_course_is_refused_at_the_tip_without_a_number() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, false).await;
        let student = identity("student-1", Role::Student);
        let enrollment = crate::model::Enrollment {
            course_id: stream.course_id.clone(),
            user_id: student.user_id.clone(),
            enrolled_by: TEACHER.into(),
            enrolled_at: now(),
        };
        store.enroll(&enrollment).await.unwrap();
        crate::service::participation::join(store, &student, &stream.id)
            .await
            .unwrap();
        send(store, &student, &stream.id, text("one"))
            .await
            .unwrap();
        send(store, &student, &stream.id, text("two"))
            .await
            .unwrap();
        store
            .client()
            .delete_item()
            .table_name(store.table())
            .set_key(Some(keys::key(
                keys::course_pk(&stream.course_id),
                keys::member_sk(&student.user_id),
            )))
            .send()
            .await
            .unwrap();

        let err = send(store, &student, &stream.id, text("three"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "stream_private");
        assert_eq!(chat_counters(store, &stream.id).await, (2, 2));
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
