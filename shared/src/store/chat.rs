//! Chat messages: appended with a gap-free per-stream sequence number.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{Cursor, QuerySpec, Store, StoreError, Update, from_item, keyed_item, n, s, time};
use crate::model::{ChatMessage, StreamStatus};

/// Index of the stream's action in [`Store::append_chat`]'s transaction.
pub const CHAT_STREAM_ACTION: usize = 0;
/// Index of the sender's participant action, when there is one.
pub const CHAT_PARTICIPANT_ACTION: usize = 2;

/// Slow mode for the sender: their last message must be older than `not_after`.
pub struct SenderGuard<'a> {
    pub user_id: &'a str,
    pub not_after: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

impl Store {
    /// Appends `message` (whose `seq` must be the stream's `chat_seq` + 1) in one
    /// transaction with the counter, conditioned on the counter still being
    /// `message.seq - 1` and the stream being live, so sequence order is commit order.
    /// With a `sender`, the sender must still be watching, allowed to chat and outside
    /// slow mode, and their `last_chat_at` moves to now.
    pub async fn append_chat(
        &self,
        message: &ChatMessage,
        sender: Option<SenderGuard<'_>>,
    ) -> Result<(), StoreError> {
        let stream = Update::new()
            .require_eq("chat_seq", n(message.seq - 1))
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .set("chat_seq", n(message.seq))
            .add("chat_messages_count", 1)
            .into_transact(
                self.table(),
                keys::stream_pk(&message.stream_id),
                STREAM_SK.into(),
            );
        let item = keyed_item(
            message,
            keys::stream_pk(&message.stream_id),
            keys::chat_sk(message.seq),
            "chat_message",
        )?;
        let mut actions = vec![stream, self.put_new_action(item)?];
        if let Some(guard) = sender {
            let mut update = Update::new()
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
            actions.push(update.into_transact(
                self.table(),
                keys::stream_pk(&message.stream_id),
                keys::participant_sk(guard.user_id),
            ));
        }
        self.transact(actions).await
    }

    /// Messages with `seq` greater than `since`, oldest first.
    pub async fn chat_page(
        &self,
        stream_id: &str,
        since: i64,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<ChatMessage>, Option<Cursor>), StoreError> {
        let (items, next) = self
            .query_page(
                QuerySpec {
                    index: None,
                    partition_attr: crate::table::PK,
                    partition_value: keys::stream_pk(stream_id),
                    sort_attr: crate::table::SK,
                    sort_prefix: None,
                    sort_after: Some(keys::chat_sk(since)),
                    forward: true,
                    limit,
                },
                cursor,
            )
            .await?;
        // The range also reaches items after the chat (PARTICIPANT#...); stop at them.
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            let is_chat = item
                .get(crate::table::SK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with(keys::CHAT_PREFIX));
            if !is_chat {
                return Ok((messages, None));
            }
            messages.push(from_item(item)?);
        }
        Ok((messages, next))
    }

    pub async fn chat_message(
        &self,
        stream_id: &str,
        seq: i64,
    ) -> Result<Option<ChatMessage>, StoreError> {
        self.get_as(keys::stream_pk(stream_id), keys::chat_sk(seq))
            .await
    }

    /// Hides a message (idempotent: hiding twice keeps the first moderator and time).
    pub async fn hide_chat(
        &self,
        stream_id: &str,
        seq: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ChatMessage, StoreError> {
        let update = Update::new()
            .exists()
            .require_eq("hidden", AttributeValue::Bool(false))
            .set("hidden", AttributeValue::Bool(true))
            .set("hidden_by", s(by))
            .set("hidden_at", time(now));
        match self
            .update(keys::stream_pk(stream_id), keys::chat_sk(seq), update)
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
            .set("pinned_message_seq", n(seq))
            .set("updated_at", time(now))
            .into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into());
        let message = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(keys::key(
                keys::stream_pk(stream_id),
                keys::chat_sk(seq),
            )))
            .condition_expression("attribute_exists(#pk) AND #hidden = :no")
            .expression_attribute_names("#pk", crate::table::PK)
            .expression_attribute_names("#hidden", "hidden")
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
