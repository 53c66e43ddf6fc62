//! Chat messages, numbered 1, 2, 3, ... per stream without gaps.
//!
//! A burst of a whole class must not turn into conflicts, so no write here is a
//! read-then-conditional-write on the hot stream item. Sending is three single-item
//! writes: the sender's participant item takes their turn (rights and slow mode as
//! conditions; only they write it), an atomic `ADD chat_seq 1` on the stream item
//! takes the next number (conditioned on the stream being live; DynamoDB serializes
//! such updates, so they never conflict), and the message is put under that number.
//!
//! Readers keep `since` exact: they return only the unbroken run of numbers after
//! `since`, so a number taken but not yet written holds readers back instead of being
//! skipped. A number whose message has not come [`CHAT_GAP_GRACE`] after a later
//! message was numbered is given up: a reader writes a gap item there (only if the
//! slot is still empty), readers move past it, and the late writer's put fails and
//! takes a new number. Visible order is therefore `seq` order, and `since=<seq>`
//! never misses a message that appears later.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{Cursor, QuerySpec, Store, StoreError, Update, from_item, keyed_item, n, s, time};
use crate::model::{ChatMessage, StreamStatus};
use crate::table::KIND;

/// How long a taken number may stay empty, counted from the numbering of a later
/// message, before readers give it up. A writer is that late only when it crashed or
/// stalled between taking the number and writing.
pub const CHAT_GAP_GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// The entity kind of a given-up number.
pub const CHAT_GAP_KIND: &str = "chat_gap";

/// Slow mode for the sender: their last message must be older than `not_after`.
pub struct SenderGuard<'a> {
    pub user_id: &'a str,
    pub not_after: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
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
    /// slow mode; their `last_chat_at` moves to now. Only the sender writes this item,
    /// so a class's burst does not contend here.
    pub async fn claim_chat_turn(
        &self,
        stream_id: &str,
        guard: &SenderGuard<'_>,
    ) -> Result<(), StoreError> {
        let mut update = Update::new()
            .exists()
            .require_eq("is_watching", AttributeValue::Bool(true))
            .require_eq("can_chat", AttributeValue::Bool(true))
            .set("last_chat_at", time(guard.now));
        if let Some(limit) = guard.not_after {
            update = update.require(
                "(attribute_not_exists({a0}) OR {a0} <= {0})",
                &["last_chat_at"],
                vec![time(limit)],
            );
        }
        self.update(
            keys::stream_pk(stream_id),
            keys::participant_sk(guard.user_id),
            update,
        )
        .await
        .map(|_| ())
    }

    /// Takes the stream's next chat number with one atomic counter update, which
    /// holds only while the stream is live ([`StoreError::ConditionFailed`] otherwise).
    pub async fn take_chat_seq(&self, stream_id: &str) -> Result<i64, StoreError> {
        let update = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .add("chat_seq", 1)
            .add("chat_messages_count", 1);
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::key(
                keys::stream_pk(stream_id),
                STREAM_SK.into(),
            )))
            .update_expression(update.expression())
            .set_condition_expression(update.condition())
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("chat_seq"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Malformed("chat_seq missing after update".into()))
    }

    /// Writes a message under the number it took. [`StoreError::ConditionFailed`]
    /// means a reader gave that number up: take a new one.
    pub async fn put_chat(&self, message: &ChatMessage) -> Result<(), StoreError> {
        let item = keyed_item(
            message,
            keys::stream_pk(&message.stream_id),
            keys::chat_sk(message.seq),
            "chat_message",
        )?;
        self.put_new(item).await
    }

    /// Gives up a number whose message never came (see the module notes); `Ok(false)`
    /// when the message arrived after all.
    async fn give_up_chat_seq(&self, stream_id: &str, seq: i64) -> Result<bool, StoreError> {
        let mut item = keys::key(keys::stream_pk(stream_id), keys::chat_sk(seq));
        item.insert(KIND.into(), s(CHAT_GAP_KIND));
        item.insert("seq".into(), n(seq));
        item.insert("stream_id".into(), s(stream_id));
        match self.put_new(item).await {
            Ok(()) => {
                tracing::warn!(
                    stream = stream_id,
                    seq,
                    "chat number given up: its message never came"
                );
                Ok(true)
            }
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
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
            index: None,
            partition_attr: crate::table::PK,
            partition_value: keys::stream_pk(stream_id),
            sort_attr: crate::table::SK,
            sort_prefix: Some(keys::CHAT_PREFIX),
            sort_after: None,
            forward: true,
            limit: 1,
            projection: None,
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
            .require_eq(KIND, s("chat_message"))
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
            .expression_attribute_values(":message", s("chat_message"))
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
