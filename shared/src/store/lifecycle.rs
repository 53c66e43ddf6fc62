//! The write side of the lifecycle rule: once a stream is ended or cancelled, nothing
//! about its class changes. Every participation, interaction and moderation write
//! carries the condition itself (on the stream item, or as a ConditionCheck of the
//! stream in the same transaction), so a write racing the stop either commits before
//! the stop or fails; there is no read-then-write window. A failure of that condition
//! surfaces as [`StoreError::StreamFinished`].

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};

use super::keys::{self, STREAM_SK};
use super::{Item, Store, StoreError, Update, s};
use crate::model::StreamStatus;

fn open_statuses() -> Vec<AttributeValue> {
    vec![
        s(StreamStatus::Scheduled.as_str()),
        s(StreamStatus::Live.as_str()),
    ]
}

impl Update {
    /// Holds only while the stream is scheduled or live; for updates of the stream
    /// item itself.
    pub fn while_open(self) -> Self {
        self.require_in("status", open_statuses())
    }
}

impl Store {
    /// A transaction action that holds only while the stream is scheduled or live.
    pub(crate) fn open_check(&self, stream_id: &str) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(keys::key(
                keys::stream_pk(stream_id),
                STREAM_SK.into(),
            )))
            .condition_expression("#status IN (:scheduled, :live)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":scheduled", s(StreamStatus::Scheduled.as_str()))
            .expression_attribute_values(":live", s(StreamStatus::Live.as_str()))
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Applies `update` to the item `sk` of a stream's partition (not the stream item
    /// itself: use [`Update::while_open`] there) only while the stream is open, and
    /// returns the item afterwards. Fails with [`StoreError::ConditionFailed`] when the
    /// update's own condition does not hold.
    pub(crate) async fn update_in_open_stream(
        &self,
        stream_id: &str,
        sk: String,
        update: Update,
    ) -> Result<Item, StoreError> {
        let pk = keys::stream_pk(stream_id);
        let actions = vec![
            update.into_transact(self.table(), pk.clone(), sk.clone()),
            self.open_check(stream_id)?,
        ];
        self.transact(actions)
            .await
            .map_err(|e| Self::stream_action_failed(e, 1))
            .map_err(|e| match e {
                e @ StoreError::TransactionCancelled(_) if e.failed_condition_at(0) => {
                    StoreError::ConditionFailed
                }
                other => other,
            })?;
        self.get(pk, sk).await?.ok_or(StoreError::ConditionFailed)
    }

    /// A transaction's failure at the action that kept the stream open means the
    /// stream is finished.
    pub(crate) fn stream_action_failed(err: StoreError, index: usize) -> StoreError {
        if err.failed_condition_at(index) {
            StoreError::StreamFinished
        } else {
            err
        }
    }

    /// After a conditional write on the stream item failed: [`StoreError::StreamFinished`]
    /// when that is why (the status never leaves ended or cancelled, so a read after the
    /// failure tells), the original error otherwise.
    pub async fn finished_or(&self, stream_id: &str, err: StoreError) -> StoreError {
        if !matches!(err, StoreError::ConditionFailed) {
            return err;
        }
        match self.stream(stream_id).await {
            Ok(Some(stream)) if stream.status.is_finished() => StoreError::StreamFinished,
            Ok(_) => err,
            Err(read) => read,
        }
    }
}
