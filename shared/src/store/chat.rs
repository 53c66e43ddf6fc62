//! Chat messages, numbered 1, 2, 3, ... per stream without gaps.
//!
//! A burst of a whole class must not turn into conflicts, and a message must not wait
//! for more than two store round trips, so no write here is a read-then-write on a
//! hot item and no transaction holds one for long.
//!
//! The chat's number and count live in the stream's chat head (`STREAM#s` /
//! `STREAM#CHAT`), a small item in no index, not in the stream item: every item a write
//! touches costs the store its reading, its index entries and its change record, and
//! the stream item is the largest and most indexed of a class. The head also says
//! whether the chat is open (`live`: set when the stream starts; the stop removes it
//! and sets `closed` before the status moves, and only a stop that did not go through
//! opens it again) and carries `chat_rules_version`, which moves, in the same
//! transaction as the stream item's own copy, whenever a rule a message is decided on
//! changes (who moderates, visibility, slow mode, blocked words, the replay index).
//!
//! 1. an atomic `ADD chat_seq 1` on the head takes the next number, conditioned on the
//!    chat being open (DynamoDB serializes such updates, so they never conflict);
//!    the stream is read at the same time, and its rules are checked against it;
//! 2. one transaction puts the message under its number (only into an empty slot) and
//!    takes the sender's turn on their own participant item (watching, allowed to chat,
//!    outside slow mode; only they write it), with, for a private stream, a check that
//!    they are still enrolled. Moderators have no turn to take: a plain put.
//!
//! A message refused after step 1 leaves its number behind as a gap item at once, so
//! readers do not wait for it; the head's `chat_messages_count`, raised with the
//! number, is lowered by whoever writes a gap, while the chat is open (after the stop
//! the count is recounted from the items, see [`Store::settle_chat`]).
//!
//! A quiet chat needs only one round trip. The process remembers each stream's tip:
//! the number its chat stood at and the stream's rules at a version of them, as the
//! last write it made left them ([`ChatTips`]). The next message is decided against
//! that image and written at the tip in one transaction: the head's counter update,
//! conditioned on the number and on the rules' version, with the message and the
//! sender's turn; the stream item is not touched. Nothing of the tip is trusted: if
//! anything moved, the transaction changes nothing and the message takes the two
//! steps above, and the process rests the stream's tip for [`TIP_REST`], longer after
//! each stale tip in a row (in a busy chat every tip is stale by the next message).
//! A message at the tip leaves no gap and no number in flight.
//!
//! Readers keep `since` exact: they return only the unbroken run of numbers after
//! `since`, so a number taken but not yet written holds readers back instead of being
//! skipped. A number whose message has not come [`CHAT_GAP_GRACE`] after a later
//! message was numbered is given up: a reader writes a gap item there (only if the
//! slot is still empty), readers move past it, and the late writer's put fails and
//! takes a new number. Visible order is therefore `seq` order, and `since=<seq>`
//! never misses a message that appears later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use backon::Retryable;
use chrono::{DateTime, Utc};

use super::keys::{self, CHAT_HEAD_SK, STREAM_SK};
use super::{
    Cursor, Item, QuerySpec, Store, StoreError, Update, done_unless_failed, from_item, keyed_item,
    n, s, time,
};
use crate::model::{ChatMessage, Stream, StreamStatus};
use crate::table::{GSI1PK, GSI1SK, KIND};

/// How long a taken number may stay empty, counted from the numbering of a later
/// message, before readers give it up. A writer is that late only when it crashed or
/// stalled between taking the number and writing.
pub const CHAT_GAP_GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// The entity kind of a chat message.
pub const CHAT_MESSAGE_KIND: &str = "chat_message";

/// The entity kind of a given-up number.
pub const CHAT_GAP_KIND: &str = "chat_gap";

/// Slow mode for the sender: their last message must be older than `not_after`.
pub struct SenderGuard<'a> {
    pub user_id: &'a str,
    pub not_after: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// One message to write (see [`Store::write_chat`]).
pub struct ChatWrite<'a> {
    pub message: &'a ChatMessage,
    /// The sender's turn to take with it; `None` for moderators.
    pub turn: Option<SenderGuard<'a>>,
    /// The course the sender must still be enrolled in (private streams).
    pub enrolled_in: Option<&'a str>,
    /// Index the message by time for the class's replay (recorded classes).
    pub replay: bool,
}

/// What became of a message write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatWritten {
    Written,
    /// A reader gave the number up meanwhile (the writer stalled): take a new one.
    NumberGivenUp,
    /// The sender may not chat now (not watching, chat turned off, slow mode).
    TurnRefused,
    /// The sender is no longer enrolled in the private stream's course.
    NotEnrolled,
    /// The stream's chat or its rules moved on since the tip the message was decided
    /// at ([`Store::write_chat_at_tip`]): nothing was written; take a number instead.
    TipMoved,
}

/// Moves, on the stream item and its chat head together, with every change of a
/// rule a message is decided on (see the module notes); absent is 0.
pub(crate) const CHAT_RULES_VERSION: &str = "chat_rules_version";

/// On the chat head while the chat is open.
const CHAT_OPEN: &str = "live";

/// On the chat head once the stop has closed the chat.
const CHAT_CLOSED: &str = "closed";

/// How many times a change of the chat's rules is tried again after meeting a
/// message's transaction on the chat head (see [`Store::transact_moving_chat_rules`]).
const RULES_CONFLICT_RETRIES: usize = 3;
/// The wait before the first of them, doubling for each after it (20, 40, 80 ms).
const RULES_CONFLICT_FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// The entity kind of a stream's chat head.
pub const CHAT_HEAD_KIND: &str = "chat_head";

/// How long a stream's tip is left unused once it proved stale; each further stale
/// tip in a row doubles it, up to [`MAX_TIP_REST`], and a message written at the tip
/// starts over. A busy chat thus costs each process a refused transaction about once
/// a minute, not once a second.
pub const TIP_REST: Duration = Duration::from_secs(1);

/// The longest rest of a stream's tip.
pub const MAX_TIP_REST: Duration = Duration::from_secs(64);

/// Streams whose tips one process keeps at most; past it the map starts over.
const MAX_TIPS: usize = 1024;

/// A stream's chat as a write of this process left it: the stream with the number
/// its chat stood at, and the version of the rules that image holds (see the module
/// notes).
#[derive(Debug)]
pub struct ChatTip {
    pub stream: Stream,
    rules_version: i64,
}

impl ChatTip {
    /// The number the next message takes at this tip.
    pub fn next_seq(&self) -> i64 {
        self.stream.chat_seq + 1
    }

    /// The tip once a message was written at it.
    fn advanced(&self) -> Self {
        let mut stream = self.stream.clone();
        stream.chat_seq += 1;
        stream.chat_messages_count += 1;
        Self {
            stream,
            rules_version: self.rules_version,
        }
    }
}

/// An integer attribute of an item; absent is 0.
fn int_attr(item: &Item, attr: &str) -> i64 {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The stream with its chat's number and count as its chat head holds them. A head
/// without a number (none taken since chat heads exist) leaves the stream's own.
pub(crate) fn with_chat_counts(mut stream: Stream, head: Option<&Item>) -> Stream {
    if let Some(head) = head.filter(|h| h.contains_key("chat_seq")) {
        stream.chat_seq = stream.chat_seq.max(int_attr(head, "chat_seq"));
        stream.chat_messages_count = int_attr(head, "chat_messages_count");
    }
    stream
}

/// A stream's tip in this process, with how many of its tips proved stale in a row.
#[derive(Debug)]
enum TipState {
    Seen { tip: Arc<ChatTip>, misses: u32 },
    Resting { until: Instant, misses: u32 },
}

impl TipState {
    fn misses(&self) -> u32 {
        match self {
            Self::Seen { misses, .. } | Self::Resting { misses, .. } => *misses,
        }
    }
}

/// The chat tips this process knows, by stream. Only a hint: a write at a tip holds
/// only if the store still agrees with it.
#[derive(Debug, Default)]
pub struct ChatTips {
    by_stream: Mutex<HashMap<String, TipState>>,
}

impl ChatTips {
    fn get(&self, stream_id: &str) -> Option<Arc<ChatTip>> {
        let tips = self
            .by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match tips.get(stream_id)? {
            TipState::Seen { tip, .. } => Some(tip.clone()),
            TipState::Resting { .. } => None,
        }
    }

    /// Keeps `tip` unless a later one is known or the stream's tip is resting;
    /// `held`: a message was just written at the tip before it.
    fn saw(&self, tip: ChatTip, held: bool) {
        let mut tips = self
            .by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let misses = match tips.get(&tip.stream.id) {
            Some(TipState::Seen { tip: known, .. })
                if known.stream.chat_seq >= tip.stream.chat_seq =>
            {
                return;
            }
            Some(TipState::Resting { until, .. }) if Instant::now() < *until => return,
            Some(state) => state.misses(),
            None => {
                if tips.len() >= MAX_TIPS {
                    tips.clear();
                }
                0
            }
        };
        let misses = if held { 0 } else { misses };
        tips.insert(
            tip.stream.id.clone(),
            TipState::Seen {
                tip: Arc::new(tip),
                misses,
            },
        );
    }

    /// The stream's tip proved stale: leave it unused for a while (see [`TIP_REST`]).
    fn rest(&self, stream_id: &str) {
        let mut tips = self
            .by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let misses = tips.get(stream_id).map_or(0, TipState::misses) + 1;
        let rest = TIP_REST
            .saturating_mul(1 << (misses - 1).min(6))
            .min(MAX_TIP_REST);
        let until = Instant::now() + rest;
        tips.insert(stream_id.to_string(), TipState::Resting { until, misses });
    }
}

/// What a chat read found after `since`.
#[derive(Debug, Default)]
pub struct ChatRead {
    /// The messages, oldest first (gap items left out).
    pub messages: Vec<ChatMessage>,
    /// The highest number read (gaps included): the next `since`.
    pub last_seq: i64,
    /// Whether more numbered items follow (the read stopped at `limit`).
    pub has_more: bool,
}

impl Store {
    /// The sender's turn: they must still be watching, allowed to chat and outside
    /// slow mode; their `last_chat_at` moves to now.
    fn turn_update(guard: &SenderGuard<'_>) -> Update {
        let update = Update::new()
            .exists()
            .require_eq("is_watching", AttributeValue::Bool(true))
            .require_eq("can_chat", AttributeValue::Bool(true))
            .set("last_chat_at", time(guard.now));
        match guard.not_after {
            Some(limit) => update.require(
                "(attribute_not_exists({a0}) OR {a0} <= {0})",
                &["last_chat_at"],
                vec![time(limit)],
            ),
            None => update,
        }
    }

    /// Takes the stream's next chat number with one atomic update of its chat head,
    /// which holds only while the chat is open ([`StoreError::ConditionFailed`]
    /// otherwise, a missing stream included), and returns it with the stream as read
    /// at the same time, its chat counters as the number left them.
    pub async fn take_chat_seq(&self, stream_id: &str) -> Result<(i64, Stream), StoreError> {
        match self.take_chat_number(stream_id).await {
            // A live stream whose chat is not open: one live from before chat heads
            // existed, or whose start stopped before opening it.
            Err(StoreError::ConditionFailed) if self.open_chat_of_live(stream_id).await? => {
                self.take_chat_number(stream_id).await
            }
            other => other,
        }
    }

    async fn take_chat_number(&self, stream_id: &str) -> Result<(i64, Stream), StoreError> {
        let pk = keys::stream_pk(stream_id);
        let number = Update::new()
            .require_eq(CHAT_OPEN, AttributeValue::Bool(true))
            .add("chat_seq", 1)
            .add("chat_messages_count", 1);
        let (head, stream) = tokio::try_join!(
            self.update(pk.clone(), CHAT_HEAD_SK.into(), number),
            self.get(pk, STREAM_SK.into()),
        )?;
        let stream = stream.ok_or(StoreError::ConditionFailed)?;
        let rules_version = int_attr(&stream, CHAT_RULES_VERSION);
        let stream = with_chat_counts(super::streams::stream_from(stream)?, Some(&head));
        if rules_version == int_attr(&head, CHAT_RULES_VERSION)
            && stream.status == StreamStatus::Live
        {
            self.chat_tips.saw(
                ChatTip {
                    stream: stream.clone(),
                    rules_version,
                },
                false,
            );
        }
        Ok((stream.chat_seq, stream))
    }

    /// Opens the chat of a stream that has just gone live: numbers can be taken from
    /// now on, counting on from the stream's own (non-zero only for a stream that
    /// was numbered in its item, before chat heads existed). Never once the stop has
    /// closed it ([`StoreError::StreamFinished`]); opening an open chat changes nothing.
    pub(crate) async fn open_chat(&self, stream: &Stream) -> Result<(), StoreError> {
        let head =
            Self::chat_opened(stream).require("attribute_not_exists({a0})", &[CHAT_CLOSED], vec![]);
        match self
            .update(keys::stream_pk(&stream.id), CHAT_HEAD_SK.into(), head)
            .await
        {
            Err(StoreError::ConditionFailed) => Err(StoreError::StreamFinished),
            other => other.map(|_| ()),
        }
    }

    /// An update of a stream's chat head, which it creates with its kind and stream
    /// when missing.
    fn head_update(stream_id: &str) -> Update {
        Update::new()
            .set(KIND, s(CHAT_HEAD_KIND))
            .set("stream_id", s(stream_id))
    }

    fn chat_opened(stream: &Stream) -> Update {
        Self::head_update(&stream.id)
            .set(CHAT_OPEN, AttributeValue::Bool(true))
            .set_default("chat_seq", n(stream.chat_seq))
            .set_default("chat_messages_count", n(stream.chat_messages_count))
    }

    /// Opens the chat if the stream is live; whether it is.
    pub(crate) async fn open_chat_of_live(&self, stream_id: &str) -> Result<bool, StoreError> {
        match self.stream(stream_id).await? {
            Some(stream) if stream.status == StreamStatus::Live => {
                self.open_chat(&stream).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Opens the chat of a stream that is still live after all (a stop that did not
    /// go through), even after [`Self::close_chat`].
    pub(crate) async fn reopen_chat(&self, stream_id: &str) -> Result<(), StoreError> {
        match self.stream(stream_id).await? {
            Some(stream) if stream.status == StreamStatus::Live => {
                let head = Self::chat_opened(&stream).remove(CHAT_CLOSED);
                self.update(keys::stream_pk(stream_id), CHAT_HEAD_SK.into(), head)
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Closes the chat for good: no number can be taken any more, and only
    /// [`Self::reopen_chat`] opens it again. The stop does it before the status
    /// moves, so no number is taken after the stop's count.
    pub(crate) async fn close_chat(&self, stream_id: &str) -> Result<(), StoreError> {
        let head = Self::head_update(stream_id)
            .set(CHAT_CLOSED, AttributeValue::Bool(true))
            .remove(CHAT_OPEN);
        self.update(keys::stream_pk(stream_id), CHAT_HEAD_SK.into(), head)
            .await
            .map(|_| ())
    }

    /// Runs `actions`, which change a rule messages are decided on (the stream item's
    /// update among them adds 1 to its [`CHAT_RULES_VERSION`]), with the chat head's
    /// version moved on in the same transaction, after them.
    ///
    /// On DynamoDB a message written at a tip at that instant holds the head in its own
    /// transaction and cancels this one (`TransactionConflict`); a teacher's change
    /// should not fail for that, so it is tried again, a few times at most.
    pub(crate) async fn transact_moving_chat_rules(
        &self,
        stream_id: &str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let moved = Self::head_update(stream_id)
            .add(CHAT_RULES_VERSION, 1)
            .into_transact(
                self.table(),
                keys::stream_pk(stream_id),
                CHAT_HEAD_SK.into(),
            );
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(RULES_CONFLICT_FIRST_BACKOFF)
            .with_max_times(RULES_CONFLICT_RETRIES);
        (|| {
            let mut all = actions.clone();
            all.push(moved.clone());
            self.transact(all)
        })
        .retry(backoff)
        .when(|e| matches!(e, StoreError::Busy(_)))
        .await
    }

    /// Applies `update`, which changes a rule messages are decided on, to the stream
    /// item, with the chat's rules moved on in the same transaction; the stream
    /// afterwards. [`StoreError::ConditionFailed`] when the update's condition fails.
    pub async fn update_chat_rules(
        &self,
        stream_id: &str,
        update: Update,
    ) -> Result<Stream, StoreError> {
        let stream = update.add(CHAT_RULES_VERSION, 1).into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            STREAM_SK.into(),
        );
        self.transact_moving_chat_rules(stream_id, vec![stream])
            .await
            .map_err(|e| {
                if e.failed_condition_at(0) {
                    StoreError::ConditionFailed
                } else {
                    e
                }
            })?;
        self.stream(stream_id)
            .await?
            .ok_or(StoreError::ConditionFailed)
    }

    /// The stream with its chat's counters as its chat head holds them.
    pub async fn with_chat(&self, stream: Stream) -> Result<Stream, StoreError> {
        let head = self.chat_head(&stream.id).await?;
        Ok(with_chat_counts(stream, head.as_ref()))
    }

    async fn chat_head(&self, stream_id: &str) -> Result<Option<Item>, StoreError> {
        self.get(keys::stream_pk(stream_id), CHAT_HEAD_SK.into())
            .await
    }

    /// The stream with its chat's counters, read together in one Query (the head
    /// sorts right after the stream item).
    pub async fn stream_with_chat(&self, stream_id: &str) -> Result<Option<Stream>, StoreError> {
        let spec = QuerySpec {
            limit: 2,
            ..QuerySpec::stream_items(stream_id, STREAM_SK)
        };
        let (items, _) = self.query_page(spec, None).await?;
        let mut stream = None;
        let mut head = None;
        for item in items {
            match item.get(crate::table::SK).and_then(|v| v.as_s().ok()) {
                Some(sk) if sk == STREAM_SK => stream = Some(item),
                Some(sk) if sk == CHAT_HEAD_SK => head = Some(item),
                _ => {}
            }
        }
        stream
            .map(|item| {
                Ok(with_chat_counts(
                    super::streams::stream_from(item)?,
                    head.as_ref(),
                ))
            })
            .transpose()
    }

    /// The streams with their chat's counters (see [`Self::with_chat`]); only live
    /// streams' heads are read, an ended stream's item holds its settled counts.
    pub async fn streams_with_chat(&self, streams: Vec<Stream>) -> Result<Vec<Stream>, StoreError> {
        let live: Vec<(String, String)> = streams
            .iter()
            .filter(|s| s.status == StreamStatus::Live)
            .map(|s| (keys::stream_pk(&s.id), CHAT_HEAD_SK.to_string()))
            .collect();
        if live.is_empty() {
            return Ok(streams);
        }
        let heads: HashMap<String, Item> = self
            .batch_get(live)
            .await?
            .into_iter()
            .filter_map(|head| Some((head.get("stream_id")?.as_s().ok()?.clone(), head)))
            .collect();
        Ok(streams
            .into_iter()
            .map(|stream| {
                let head = heads.get(&stream.id);
                with_chat_counts(stream, head)
            })
            .collect())
    }

    /// The stream's chat tip this process knows and may write at, if any.
    pub fn chat_tip(&self, stream_id: &str) -> Option<Arc<ChatTip>> {
        self.chat_tips.get(stream_id)
    }

    /// Writes a message numbered [`ChatTip::next_seq`] in one round trip: the
    /// stream's counters move in the same transaction, only while the stream is live
    /// and its number and rules are still those of the tip
    /// ([`ChatWritten::TipMoved`] otherwise, and the tip rests).
    pub async fn write_chat_at_tip(
        &self,
        tip: &ChatTip,
        write: ChatWrite<'_>,
    ) -> Result<ChatWritten, StoreError> {
        let stream_id = &tip.stream.id;
        if write.message.seq != tip.next_seq() || write.message.stream_id != *stream_id {
            return Err(StoreError::Malformed(format!(
                "message {} of {} is not the next at the tip",
                write.message.seq, write.message.stream_id
            )));
        }
        let at_tip = Update::new()
            .require_eq(CHAT_OPEN, AttributeValue::Bool(true))
            .require_eq("chat_seq", n(tip.stream.chat_seq))
            .add("chat_seq", 1)
            .add("chat_messages_count", 1);
        let at_tip = match tip.rules_version {
            0 => at_tip.require("attribute_not_exists({a0})", &[CHAT_RULES_VERSION], vec![]),
            version => at_tip.require_eq(CHAT_RULES_VERSION, n(version)),
        };
        let numbered = at_tip.into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            CHAT_HEAD_SK.into(),
        );
        match self.transact_chat(&write, Some(numbered)).await {
            Ok(ChatWritten::Written) => {
                self.chat_tips.saw(tip.advanced(), true);
                Ok(ChatWritten::Written)
            }
            Ok(ChatWritten::NumberGivenUp) | Err(StoreError::Busy(_)) => {
                self.chat_tips.rest(stream_id);
                Ok(ChatWritten::TipMoved)
            }
            other => other,
        }
    }

    /// Writes a message under the number it took, with the sender's turn and their
    /// enrollment when the write asks for them, in one round trip (see the module
    /// notes). Nothing is written unless everything holds.
    pub async fn write_chat(&self, write: ChatWrite<'_>) -> Result<ChatWritten, StoreError> {
        if write.turn.is_none() && write.enrolled_in.is_none() {
            return match self.put_new(Self::chat_item(&write)?).await {
                Ok(()) => Ok(ChatWritten::Written),
                Err(StoreError::ConditionFailed) => Ok(ChatWritten::NumberGivenUp),
                Err(e) => Err(e),
            };
        }
        self.transact_chat(&write, None).await
    }

    /// The message's item, indexed for replay when the write asks for it.
    fn chat_item(write: &ChatWrite<'_>) -> Result<Item, StoreError> {
        let message = write.message;
        let mut item = keyed_item(
            message,
            keys::stream_pk(&message.stream_id),
            keys::chat_sk(message.seq),
            CHAT_MESSAGE_KIND,
        )?;
        if write.replay {
            item.insert(GSI1PK.into(), s(keys::replay_pk(&message.stream_id)));
            item.insert(
                GSI1SK.into(),
                s(keys::replay_chat_sk(message.created_at, message.seq)),
            );
        }
        Ok(item)
    }

    /// The message with its turn and enrollment check in one transaction, after
    /// `numbered` (the counter update of a write at the tip) when there is one. A
    /// refusal of the number or of the message's slot is [`ChatWritten::NumberGivenUp`].
    async fn transact_chat(
        &self,
        write: &ChatWrite<'_>,
        numbered: Option<TransactWriteItem>,
    ) -> Result<ChatWritten, StoreError> {
        let message = write.message;
        let mut actions: Vec<TransactWriteItem> = numbered.into_iter().collect();
        let message_at = actions.len();
        actions.push(self.put_new_action(Self::chat_item(write)?)?);
        let turn_at = write.turn.as_ref().map(|guard| {
            actions.push(Self::turn_update(guard).into_transact(
                self.table(),
                keys::stream_pk(&message.stream_id),
                keys::participant_sk(guard.user_id),
            ));
            actions.len() - 1
        });
        let enrollment_at = match write.enrolled_in {
            Some(course_id) => {
                let check = ConditionCheck::builder()
                    .table_name(self.table())
                    .set_key(Some(keys::key(
                        keys::course_pk(course_id),
                        keys::member_sk(&message.user_id),
                    )))
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", crate::table::PK)
                    .build()
                    .map_err(|e| StoreError::Dynamo(e.to_string()))?;
                actions.push(TransactWriteItem::builder().condition_check(check).build());
                Some(actions.len() - 1)
            }
            None => None,
        };
        match self.transact(actions).await {
            Ok(()) => Ok(ChatWritten::Written),
            Err(e) if (0..=message_at).any(|i| e.failed_condition_at(i)) => {
                Ok(ChatWritten::NumberGivenUp)
            }
            Err(e) if enrollment_at.is_some_and(|i| e.failed_condition_at(i)) => {
                Ok(ChatWritten::NotEnrolled)
            }
            Err(e) if turn_at.is_some_and(|i| e.failed_condition_at(i)) => {
                Ok(ChatWritten::TurnRefused)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a message under its number with no turn to take;
    /// [`StoreError::ConditionFailed`] when the number was given up.
    pub async fn put_chat(&self, message: &ChatMessage) -> Result<(), StoreError> {
        let write = ChatWrite {
            message,
            turn: None,
            enrolled_in: None,
            replay: false,
        };
        match self.write_chat(write).await? {
            ChatWritten::Written => Ok(()),
            _ => Err(StoreError::ConditionFailed),
        }
    }

    /// Leaves a number that will carry no message as a gap item at once, so readers
    /// move past it (see the module notes).
    pub async fn release_chat_seq(&self, stream_id: &str, seq: i64) -> Result<(), StoreError> {
        self.give_up_chat_seq(stream_id, seq).await.map(|_| ())
    }

    /// Gives up a number whose message never came (see the module notes); `Ok(false)`
    /// when the message arrived after all.
    async fn give_up_chat_seq(&self, stream_id: &str, seq: i64) -> Result<bool, StoreError> {
        if !self.put_chat_gap(stream_id, seq).await? {
            return Ok(false);
        }
        tracing::info!(stream = stream_id, seq, "chat number given up");
        // While open the count follows the gaps; after the stop it is recounted.
        let uncounted = Update::new()
            .require_eq(CHAT_OPEN, AttributeValue::Bool(true))
            .add("chat_messages_count", -1);
        done_unless_failed(
            self.update(keys::stream_pk(stream_id), CHAT_HEAD_SK.into(), uncounted)
                .await,
        )?;
        Ok(true)
    }

    /// Puts a gap item into an empty slot; `Ok(false)` when the slot was taken.
    async fn put_chat_gap(&self, stream_id: &str, seq: i64) -> Result<bool, StoreError> {
        let mut item = keys::key(keys::stream_pk(stream_id), keys::chat_sk(seq));
        item.insert(KIND.into(), s(CHAT_GAP_KIND));
        item.insert("seq".into(), n(seq));
        item.insert("stream_id".into(), s(stream_id));
        match self.put_new(item).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Closes a stream's chat for good once no number can be taken any more (the
    /// stream has ended, or the process that wrote it restarted): every number up to
    /// `chat_seq` whose message is not there becomes a gap, so a writer still holding
    /// one fails and no message can appear later, and the messages are counted. The
    /// stream's `chat_messages_count` is set to that count and its `chat_seq` to the
    /// last number, in its item and its chat head; the count is returned. `chat_seq`
    /// is the stream item's own; the head's number counts too.
    pub async fn settle_chat(&self, stream_id: &str, chat_seq: i64) -> Result<i64, StoreError> {
        let head = self
            .get(keys::stream_pk(stream_id), CHAT_HEAD_SK.into())
            .await?;
        let chat_seq = chat_seq.max(head.as_ref().map_or(0, |h| int_attr(h, "chat_seq")));
        let present = self.chat_items(stream_id).await?;
        let numbers: std::collections::HashSet<i64> = present.iter().map(|(seq, _)| *seq).collect();
        let mut filled_all = true;
        for missing in (1..=chat_seq).filter(|seq| !numbers.contains(seq)) {
            filled_all &= self.put_chat_gap(stream_id, missing).await?;
        }
        let messages = if filled_all {
            present.iter().filter(|(_, message)| *message).count()
        } else {
            // A message took one of the slots meanwhile: count what is there now.
            self.chat_items(stream_id)
                .await?
                .iter()
                .filter(|(_, message)| *message)
                .count()
        };
        let messages = i64::try_from(messages).unwrap_or(i64::MAX);
        let recounted = || {
            Update::new()
                .exists()
                .set("chat_seq", n(chat_seq))
                .set("chat_messages_count", n(messages))
        };
        let pk = keys::stream_pk(stream_id);
        let head_recounted = async {
            match head {
                Some(_) => self
                    .update(pk.clone(), CHAT_HEAD_SK.into(), recounted())
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        tokio::try_join!(
            head_recounted,
            self.update(pk.clone(), STREAM_SK.into(), recounted()),
        )?;
        Ok(messages)
    }

    /// Every chat item of a stream: its number and whether it is a message (not a gap).
    async fn chat_items(&self, stream_id: &str) -> Result<Vec<(i64, bool)>, StoreError> {
        let spec = QuerySpec {
            projection: Some(&[crate::table::SK, KIND]),
            ..QuerySpec::stream_items(stream_id, keys::CHAT_PREFIX)
        };
        Ok(self
            .query_all(spec, usize::MAX)
            .await?
            .iter()
            .filter_map(|item| {
                let seq = chat_item_seq(item)?;
                let kind = item.get(KIND).and_then(|v| v.as_s().ok());
                Some((seq, kind.map(String::as_str) == Some(CHAT_MESSAGE_KIND)))
            })
            .collect())
    }

    /// The unbroken run of chat items after `since`, at most `limit` numbers.
    pub async fn chat_after(
        &self,
        stream_id: &str,
        since: i64,
        limit: i32,
    ) -> Result<ChatRead, StoreError> {
        let mut read = ChatRead {
            last_seq: since,
            ..Default::default()
        };
        let mut budget = limit;
        'query: loop {
            if budget <= 0 {
                read.has_more = true;
                return Ok(read);
            }
            let (items, next) = self
                .query_page(
                    QuerySpec {
                        index: None,
                        partition_attr: crate::table::PK,
                        partition_value: keys::stream_pk(stream_id),
                        sort_attr: crate::table::SK,
                        sort_prefix: None,
                        sort_after: Some(keys::chat_sk(read.last_seq)),
                        forward: true,
                        limit: budget,
                        projection: None,
                    },
                    None,
                )
                .await?;
            for item in items {
                let Some(seq) = chat_item_seq(&item) else {
                    // The range also reaches items after the chat (PARTICIPANT#...).
                    return Ok(read);
                };
                if seq > read.last_seq + 1 {
                    let numbered_at = item
                        .get("created_at")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|t| t.parse::<DateTime<Utc>>().ok());
                    let overdue =
                        numbered_at.is_some_and(|at| crate::model::now() - at > CHAT_GAP_GRACE);
                    if !overdue {
                        return Ok(read);
                    }
                    for missing in read.last_seq + 1..seq {
                        self.give_up_chat_seq(stream_id, missing).await?;
                    }
                    // Some may have been written meanwhile: read the run again.
                    continue 'query;
                }
                read.last_seq = seq;
                budget -= 1;
                if item
                    .get(KIND)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    != Some(CHAT_GAP_KIND)
                {
                    read.messages.push(from_item(item)?);
                }
            }
            if next.is_none() {
                return Ok(read);
            }
        }
    }

    /// The `seq` a chat cursor stands for, when it was issued for this stream's chat.
    pub fn chat_cursor_seq(&self, stream_id: &str, cursor: &Cursor) -> Result<i64, StoreError> {
        let spec = QuerySpec {
            limit: 1,
            ..QuerySpec::stream_items(stream_id, keys::CHAT_PREFIX)
        };
        let key = cursor.start_key(&spec)?;
        key.get(crate::table::SK)
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix(keys::CHAT_PREFIX))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or(StoreError::InvalidCursor)
    }

    /// The cursor a client passes to read on after `seq`.
    pub fn chat_cursor(stream_id: &str, seq: i64) -> Cursor {
        Cursor::from_key(&keys::key(keys::stream_pk(stream_id), keys::chat_sk(seq)))
    }

    pub async fn chat_message(
        &self,
        stream_id: &str,
        seq: i64,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let item = self
            .get(keys::stream_pk(stream_id), keys::chat_sk(seq))
            .await?;
        item.filter(|i| {
            i.get(KIND).and_then(|v| v.as_s().ok()).map(String::as_str) != Some(CHAT_GAP_KIND)
        })
        .map(from_item)
        .transpose()
    }

    /// Hides a message while the stream is open (idempotent: hiding twice keeps the
    /// first moderator and time).
    pub async fn hide_chat(
        &self,
        stream_id: &str,
        seq: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ChatMessage, StoreError> {
        let update = Update::new()
            .exists()
            .require_eq(KIND, s(CHAT_MESSAGE_KIND))
            .require_eq("hidden", AttributeValue::Bool(false))
            .set("hidden", AttributeValue::Bool(true))
            .set("hidden_by", s(by))
            .set("hidden_at", time(now));
        match self
            .update_in_open_stream(stream_id, keys::chat_sk(seq), update)
            .await
        {
            Ok(item) => from_item(item),
            Err(StoreError::ConditionFailed) => self
                .chat_message(stream_id, seq)
                .await?
                .ok_or(StoreError::ConditionFailed),
            Err(e) => Err(e),
        }
    }

    /// Pins a message that exists and is not hidden.
    pub async fn pin_chat(
        &self,
        stream_id: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stream = Update::new()
            .exists()
            .while_open()
            .set("pinned_message_seq", n(seq))
            .set("updated_at", time(now))
            .into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into());
        let message = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(keys::key(
                keys::stream_pk(stream_id),
                keys::chat_sk(seq),
            )))
            .condition_expression("attribute_exists(#pk) AND #kind = :message AND #hidden = :no")
            .expression_attribute_names("#pk", crate::table::PK)
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_names("#hidden", "hidden")
            .expression_attribute_values(":message", s(CHAT_MESSAGE_KIND))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        self.transact(vec![
            stream,
            TransactWriteItem::builder()
                .condition_check(message)
                .build(),
        ])
        .await
        .map_err(|e| Self::stream_action_failed(e, 0))
    }

    /// Unpins; with `only_seq`, only if that message is the pinned one.
    pub async fn unpin_chat(
        &self,
        stream_id: &str,
        only_seq: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.clear_stream_field(stream_id, "pinned_message_seq", only_seq.map(n), now)
            .await
    }
}

/// The `seq` of a chat item (message or gap); `None` for items that are not chat.
fn chat_item_seq(item: &super::Item) -> Option<i64> {
    item.get(crate::table::SK)?
        .as_s()
        .ok()?
        .strip_prefix(keys::CHAT_PREFIX)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestEnv, teacher_stream};

    fn rest_left(tips: &ChatTips, stream_id: &str) -> Option<Duration> {
        let tips = tips.by_stream.lock().unwrap();
        match tips.get(stream_id)? {
            TipState::Resting { until, .. } => {
                Some(until.saturating_duration_since(Instant::now()))
            }
            TipState::Seen { .. } => None,
        }
    }

    /// Ends the stream's rest now, as time would.
    fn wake(tips: &ChatTips, stream_id: &str) {
        let mut tips = tips.by_stream.lock().unwrap();
        if let Some(TipState::Resting { until, .. }) = tips.get_mut(stream_id) {
            *until = Instant::now();
        }
    }

    /// A loopback proxy to `store` that cancels the first `refused` transactions the
    /// way DynamoDB does when another transaction holds one of their items.
    async fn conflicting_proxy(store: String, refused: usize) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let seen = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (seen, client, store) = (seen.clone(), client.clone(), store.clone());
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if target.ends_with("TransactWriteItems")
                        && seen.fetch_add(1, Ordering::SeqCst) < refused
                    {
                        let cancelled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled [TransactionConflict, None]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"None"}]}"#;
                        return (axum::http::StatusCode::BAD_REQUEST, cancelled.to_string());
                    }
                    let mut request = client.post(&store).body(body);
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            request = request.header(name, value);
                        }
                    }
                    let answer = request.send().await.unwrap();
                    let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
                    (status, answer.text().await.unwrap())
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn a_change_of_the_rules_that_meets_a_message_at_the_head_is_tried_again() {
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        let slow_mode = || Update::new().exists().set("chat_slow_mode_seconds", n(5));
        let endpoint = env.dynamo.endpoint.clone();
        let through = |refused| {
            let endpoint = endpoint.clone();
            async move {
                let proxy = conflicting_proxy(endpoint, refused).await;
                let client =
                    aws_sdk_dynamodb::Client::from_conf(crate::testing::dynamo_config(&proxy));
                Store::new(client, crate::testing::TEST_TABLE)
            }
        };

        let changed = through(RULES_CONFLICT_RETRIES)
            .await
            .update_chat_rules(&stream.id, slow_mode())
            .await
            .unwrap();
        assert_eq!(changed.chat_slow_mode_seconds, 5);
        let head = env.store().chat_head(&stream.id).await.unwrap().unwrap();
        assert_eq!(int_attr(&head, CHAT_RULES_VERSION), 1, "applied once");

        let refused = through(RULES_CONFLICT_RETRIES + 1)
            .await
            .update_chat_rules(&stream.id, slow_mode())
            .await;
        assert!(matches!(refused, Err(StoreError::Busy(_))), "{refused:?}");
        let head = env.store().chat_head(&stream.id).await.unwrap().unwrap();
        assert_eq!(int_attr(&head, CHAT_RULES_VERSION), 1, "nothing written");

        // Making a moderator moves the rules too, and meets the same conflicts.
        let student = crate::testing::identity("student-1", crate::auth::Role::Student);
        crate::service::participation::join(env.store(), &student, &stream.id)
            .await
            .unwrap();
        let moderator = through(RULES_CONFLICT_RETRIES)
            .await
            .set_participant_permissions(&stream.id, &student.user_id, Some(true), None, None)
            .await
            .unwrap();
        assert!(moderator.is_moderator);
        let head = env.store().chat_head(&stream.id).await.unwrap().unwrap();
        assert_eq!(int_attr(&head, CHAT_RULES_VERSION), 2, "applied once");
    }

    #[tokio::test]
    async fn each_stale_tip_in_a_row_rests_longer_and_a_message_at_the_tip_starts_over() {
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        let id = stream.id.clone();
        let at = |seq: i64| {
            let mut stream = stream.clone();
            stream.chat_seq = seq;
            ChatTip {
                stream,
                rules_version: 0,
            }
        };
        let tips = ChatTips::default();
        tips.saw(at(1), false);
        assert!(tips.get(&id).is_some());

        let mut rests = Vec::new();
        for seq in 2..=10 {
            tips.rest(&id);
            assert!(tips.get(&id).is_none(), "resting");
            tips.saw(at(seq), false);
            assert!(
                tips.get(&id).is_none(),
                "a tip seen while resting is not kept"
            );
            rests.push(rest_left(&tips, &id).unwrap());
            wake(&tips, &id);
            tips.saw(at(seq), false);
        }
        let whole_seconds: Vec<u64> = rests
            .iter()
            .map(|r| r.as_secs_f64().round() as u64)
            .collect();
        assert_eq!(whole_seconds, [1, 2, 4, 8, 16, 32, 64, 64, 64]);

        tips.saw(at(11), true);
        tips.rest(&id);
        assert_eq!(rest_left(&tips, &id).unwrap().as_secs_f64().round(), 1.0);
    }
}
