//! Questions and upvotes. A vote is an item whose existence is the vote, written in
//! one transaction with the question's and the stream's counters, so counts are exact
//! and a user votes at most once.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{QuerySpec, Store, StoreError, Update, from_item, keyed_item, s, time};
use crate::model::{Question, QuestionStatus, StreamStatus};
use crate::table::{GSI2, GSI2PK, GSI2SK, KIND};

/// Index of the vote item's action in vote transactions.
pub const VOTE_ACTION: usize = 0;
/// Index of the question's action in vote and answer transactions.
pub const QUESTION_ACTION: usize = 1;
/// Index of the stream's action in vote transactions.
const STREAM_ACTION: usize = 2;

fn status(value: QuestionStatus) -> AttributeValue {
    s(value.as_str())
}

impl Store {
    /// Stores a new question and counts it on the stream, which must be live.
    pub async fn ask(&self, question: &Question) -> Result<(), StoreError> {
        let stream = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .add("questions_count", 1)
            .into_transact(
                self.table(),
                keys::stream_pk(&question.stream_id),
                STREAM_SK.into(),
            );
        let item = keyed_item(
            question,
            keys::stream_pk(&question.stream_id),
            keys::question_sk(&question.id),
            "question",
        )?;
        self.transact(vec![stream, self.put_new_action(item)?])
            .await
            .map_err(|e| match e {
                e if e.failed_condition_at(0) => StoreError::ConditionFailed,
                other => other,
            })
    }

    pub async fn question(
        &self,
        stream_id: &str,
        question_id: &str,
    ) -> Result<Option<Question>, StoreError> {
        self.get_as(keys::stream_pk(stream_id), keys::question_sk(question_id))
            .await
    }

    /// A stream's questions, at most `max` (oldest first).
    pub async fn questions(
        &self,
        stream_id: &str,
        max: usize,
    ) -> Result<Vec<Question>, StoreError> {
        let spec = QuerySpec {
            index: None,
            partition_attr: crate::table::PK,
            partition_value: keys::stream_pk(stream_id),
            sort_attr: crate::table::SK,
            sort_prefix: Some(keys::QUESTION_PREFIX),
            sort_after: None,
            forward: true,
            limit: 500,
        };
        self.query_all(spec, max)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// The ids of the questions of a stream a user has upvoted.
    pub async fn votes_of_user(
        &self,
        stream_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = keys::vote_ref_prefix(stream_id);
        let spec = QuerySpec {
            index: Some(GSI2),
            partition_attr: GSI2PK,
            partition_value: keys::user_pk(user_id),
            sort_attr: GSI2SK,
            sort_prefix: Some(&prefix),
            sort_after: None,
            forward: true,
            limit: 1000,
        };
        let items = self.query_all(spec, usize::MAX).await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                i.get(GSI2SK)?
                    .as_s()
                    .ok()?
                    .strip_prefix(prefix.as_str())
                    .map(str::to_string)
            })
            .collect())
    }

    fn votable(&self, stream_id: &str, question_id: &str, delta: i64) -> TransactWriteItem {
        Update::new()
            .exists()
            .require_eq("hidden", AttributeValue::Bool(false))
            .require_in(
                "status",
                vec![
                    status(QuestionStatus::Open),
                    status(QuestionStatus::Answered),
                ],
            )
            .add("upvotes", delta)
            .into_transact(
                self.table(),
                keys::stream_pk(stream_id),
                keys::question_sk(question_id),
            )
    }

    /// Records a user's upvote: fails on [`VOTE_ACTION`] when they already voted and on
    /// [`QUESTION_ACTION`] when the question cannot be voted on.
    pub async fn upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let vote = Put::builder()
            .table_name(self.table())
            .item(crate::table::PK, s(keys::stream_pk(stream_id)))
            .item(crate::table::SK, s(keys::vote_sk(question_id, user_id)))
            .item(KIND, s("vote"))
            .item(GSI2PK, s(keys::user_pk(user_id)))
            .item(GSI2SK, s(keys::vote_ref(stream_id, question_id)))
            .item("question_id", s(question_id))
            .item("user_id", s(user_id))
            .item("voted_at", time(now))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        let stream = Update::new()
            .exists()
            .while_open()
            .add("upvotes_count", 1)
            .into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into());
        self.transact(vec![
            TransactWriteItem::builder().put(vote).build(),
            self.votable(stream_id, question_id, 1),
            stream,
        ])
        .await
        .map_err(|e| Self::stream_action_failed(e, STREAM_ACTION))
    }

    /// Withdraws a user's upvote: fails on [`VOTE_ACTION`] when there was none.
    pub async fn remove_upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
    ) -> Result<(), StoreError> {
        let vote = Delete::builder()
            .table_name(self.table())
            .key(crate::table::PK, s(keys::stream_pk(stream_id)))
            .key(crate::table::SK, s(keys::vote_sk(question_id, user_id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        let question = Update::new().exists().add("upvotes", -1).into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            keys::question_sk(question_id),
        );
        let stream = Update::new()
            .exists()
            .while_open()
            .add("upvotes_count", -1)
            .into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into());
        self.transact(vec![
            TransactWriteItem::builder().delete(vote).build(),
            question,
            stream,
        ])
        .await
        .map_err(|e| Self::stream_action_failed(e, STREAM_ACTION))
    }

    /// Sets the answer. The first answer moves the question to answered and counts it
    /// on the stream (conditioned on it not being answered yet); a later edit only
    /// changes the text.
    pub async fn answer(
        &self,
        question: &Question,
        answer: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let set = |update: Update| {
            update
                .set("answer", s(answer))
                .set("answered_by", s(by))
                .set("answered_at", time(now))
                .set("updated_at", time(now))
        };
        let (pk, sk) = (
            keys::stream_pk(&question.stream_id),
            keys::question_sk(&question.id),
        );
        if question.status == QuestionStatus::Answered {
            let update = set(Update::new().require_eq("status", status(QuestionStatus::Answered)));
            return self
                .update_in_open_stream(&question.stream_id, sk, update)
                .await
                .map(|_| ());
        }
        let update = set(Update::new()
            .require_in(
                "status",
                vec![
                    status(QuestionStatus::Open),
                    status(QuestionStatus::Pending),
                ],
            )
            .set("status", status(QuestionStatus::Answered)))
        .into_transact(self.table(), pk, sk);
        let stream = Update::new()
            .exists()
            .while_open()
            .add("questions_answered_count", 1)
            .into_transact(
                self.table(),
                keys::stream_pk(&question.stream_id),
                STREAM_SK.into(),
            );
        self.transact(vec![stream, update])
            .await
            .map_err(|e| Self::stream_action_failed(e, 0))
    }

    /// Moves a question from one of `from` to `to`.
    pub async fn set_question_status(
        &self,
        stream_id: &str,
        question_id: &str,
        from: &[QuestionStatus],
        to: QuestionStatus,
        now: DateTime<Utc>,
    ) -> Result<Question, StoreError> {
        let update = Update::new()
            .exists()
            .require_in("status", from.iter().map(|s| status(*s)).collect())
            .set("status", status(to))
            .set("updated_at", time(now));
        from_item(
            self.update_in_open_stream(stream_id, keys::question_sk(question_id), update)
                .await?,
        )
    }

    /// Hides a question from students (idempotent).
    pub async fn hide_question(
        &self,
        stream_id: &str,
        question_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Question, StoreError> {
        let update = Update::new()
            .exists()
            .set("hidden", AttributeValue::Bool(true))
            .set("updated_at", time(now));
        from_item(
            self.update_in_open_stream(stream_id, keys::question_sk(question_id), update)
                .await?,
        )
    }

    /// Highlights a visible question ("now answering"); fails on action 1 otherwise.
    pub async fn highlight_question(
        &self,
        stream_id: &str,
        question_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stream = Update::new()
            .exists()
            .while_open()
            .set("highlighted_question_id", s(question_id))
            .set("updated_at", time(now))
            .into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into());
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .key(crate::table::PK, s(keys::stream_pk(stream_id)))
            .key(crate::table::SK, s(keys::question_sk(question_id)))
            .condition_expression(
                "attribute_exists(#pk) AND #hidden = :no AND #status IN (:open, :answered)",
            )
            .expression_attribute_names("#pk", crate::table::PK)
            .expression_attribute_names("#hidden", "hidden")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":open", status(QuestionStatus::Open))
            .expression_attribute_values(":answered", status(QuestionStatus::Answered))
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        self.transact(vec![
            stream,
            TransactWriteItem::builder().condition_check(check).build(),
        ])
        .await
        .map_err(|e| Self::stream_action_failed(e, 0))
    }

    /// Clears the highlight; with `only`, only if that question is the highlighted one.
    pub async fn clear_highlight(
        &self,
        stream_id: &str,
        only: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.clear_stream_field(stream_id, "highlighted_question_id", only.map(s), now)
            .await
    }
}
