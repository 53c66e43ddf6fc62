//! The write side of the lifecycle rule: once a stream is ended or cancelled, nothing
//! about its class changes. Every participation, interaction and moderation write
//! carries the condition itself, so a write racing the stop either commits before the
//! stop or fails; there is no read-then-write window. A failure of that condition
//! surfaces as [`StoreError::StreamFinished`].
//!
//! Writes of the stream item carry it as a condition on the status. A moderation write
//! of another item (hiding a message, approving a question, a participant's rights)
//! is a transaction with a ConditionCheck that the stream's closed marker
//! (`STREAM#s` / `CLOSED`) is absent, not a check of the stream item: a transaction
//! holding the stream item would make every chat number and join taken meanwhile
//! fail. The stop and the cancel write the marker before the status, so moderation
//! closes a moment before the rest of the class, never after.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, CLOSED_SK};
use super::{Item, Store, StoreError, Update, s, time};
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
    /// A transaction action that holds only while the stream is not closed.
    pub(crate) fn open_check(&self, stream_id: &str) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(keys::key(
                keys::stream_pk(stream_id),
                CLOSED_SK.into(),
            )))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", crate::table::PK)
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Marks a stream closed (see the module notes); writing it again changes nothing.
    pub(crate) async fn close(&self, stream_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let update = Update::new().set_default("closed_at", time(at));
        self.update(keys::stream_pk(stream_id), CLOSED_SK.into(), update)
            .await
            .map(|_| ())
    }

    /// Takes the marker back when the stream was not closed after all (a cancel that
    /// met a start, a stop of an abandoned push that came back), and opens its chat
    /// again if it is live.
    pub(crate) async fn reopen(&self, stream_id: &str) -> Result<(), StoreError> {
        self.delete_where(keys::stream_pk(stream_id), CLOSED_SK.into(), Update::new())
            .await?;
        self.reopen_chat(stream_id).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::model::{ChatMessage, MessageType, Question, QuestionStatus, Session, Stream};
    use crate::model::{new_id, now};
    use crate::store::keys::STREAM_SK;
    use crate::testing::{TestEnv, identity, teacher_stream};

    async fn stream(store: &Store, live: bool) -> Stream {
        teacher_stream(store, live, true).await
    }

    async fn question(store: &Store, stream: &Stream, status: QuestionStatus) -> Question {
        let question = Question {
            id: new_id(),
            stream_id: stream.id.clone(),
            user_id: "student".into(),
            text: "why?".into(),
            status,
            created_at: now(),
            updated_at: now(),
            ..Default::default()
        };
        store.ask(&question).await.unwrap();
        question
    }

    #[tokio::test]
    async fn moderation_never_holds_the_stream_item_and_closes_with_the_stream() {
        let env = TestEnv::start().await;
        let (store, operations) = env.counting_store();
        let stream = stream(&store, true).await;
        let student = identity("student", Role::Student);
        crate::service::presence::enter(&store, &student, &stream, &Session::Http)
            .await
            .unwrap();
        let seq = store.take_chat_seq(&stream.id).await.unwrap().0;
        let message = ChatMessage {
            id: new_id(),
            seq,
            stream_id: stream.id.clone(),
            user_id: "student".into(),
            display_name: "student".into(),
            role: Role::Student,
            message: "hi".into(),
            message_type: MessageType::default(),
            created_at: now(),
            hidden: false,
            hidden_by: None,
            hidden_at: None,
        };
        store.put_chat(&message).await.unwrap();
        let pending = question(&store, &stream, QuestionStatus::Pending).await;

        store
            .hide_chat(&stream.id, seq, "teacher", now())
            .await
            .unwrap();
        store
            .set_question_status(
                &stream.id,
                &pending.id,
                &[QuestionStatus::Pending],
                QuestionStatus::Open,
                now(),
            )
            .await
            .unwrap();
        store
            .hide_question(&stream.id, &pending.id, now())
            .await
            .unwrap();
        store
            .set_participant_permissions(&stream.id, "student", None, Some(false), None)
            .await
            .unwrap();
        let transactions = operations.transaction_items();
        assert_eq!(transactions.len(), 4, "{transactions:?}");
        let stream_item = (keys::stream_pk(&stream.id), STREAM_SK.to_string());
        assert!(
            transactions
                .iter()
                .flatten()
                .all(|item| *item != stream_item),
            "{transactions:?}"
        );

        store
            .stop_stream(&stream.id, stream.started_at.unwrap(), now(), None)
            .await
            .unwrap();
        let hidden = store.hide_question(&stream.id, &pending.id, now()).await;
        assert!(
            matches!(hidden, Err(StoreError::StreamFinished)),
            "{hidden:?}"
        );
        let rights = store
            .set_participant_permissions(&stream.id, "student", None, Some(true), None)
            .await;
        assert!(
            matches!(rights, Err(StoreError::StreamFinished)),
            "{rights:?}"
        );
        let participant = store.participant(&stream.id, "student").await.unwrap();
        assert!(!participant.unwrap().can_chat);
    }

    #[tokio::test]
    async fn a_cancel_that_meets_a_start_leaves_the_class_open() {
        let env = TestEnv::start().await;
        let store = env.store();
        let scheduled = stream(store, false).await;
        let started = store
            .start_stream(&scheduled.id, now(), false)
            .await
            .unwrap();
        let cancelled = store.cancel_stream(&started.id, now()).await;
        assert!(
            matches!(cancelled, Err(StoreError::ConditionFailed)),
            "{cancelled:?}"
        );
        let open = question(store, &started, QuestionStatus::Open).await;
        store
            .hide_question(&started.id, &open.id, now())
            .await
            .unwrap();

        let marker = |id: &str| store.get(keys::stream_pk(id), CLOSED_SK.into());
        assert!(marker(&started.id).await.unwrap().is_none());

        let other = stream(store, false).await;
        store.cancel_stream(&other.id, now()).await.unwrap();
        assert!(marker(&other.id).await.unwrap().is_some());
        let check = store.open_check(&other.id).unwrap();
        let refused = store.transact(vec![check]).await.unwrap_err();
        assert!(refused.failed_condition_at(0), "{refused:?}");
    }
}
