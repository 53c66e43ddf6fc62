//! Questions and upvotes.
//!
//! A class upvotes a popular question all at once, so no vote is a transaction: on
//! DynamoDB, transactions touching the same item (the question, the stream) cancel
//! each other, and a single write to an item a transaction holds is refused. A vote
//! is four single-item writes, none of which can conflict (DynamoDB serializes them):
//!
//! 1. the vote item is put as `pending` (only if absent: one vote per user);
//! 2. the question gains a vote, if it can be voted on;
//! 3. the stream gains a vote, only while it is open (the lifecycle gate);
//! 4. the vote item becomes `counted`.
//!
//! A refusal at 2 or 3 undoes the steps before it, so a vote racing the stop is either
//! in the stream's count before the stop or refused. Withdrawing runs the other way:
//! `counted` -> `removing`, the stream (gated) and the question lose the vote, the item
//! goes. A request killed between these writes leaves its vote item `pending` or
//! `removing`: the user keeps seeing it as theirs while pending and not while removing,
//! and cannot vote on that question again; the counts may miss that one vote, never
//! count it twice.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{
    QuerySpec, Store, StoreError, Update, done_unless_failed, from_item, keyed_item, n, s, time,
};
use crate::model::{Question, QuestionStatus, StreamStatus};
use crate::table::{GSI2, GSI2PK, GSI2SK, KIND};

/// Index of the question's action in answer transactions.
pub const QUESTION_ACTION: usize = 1;

/// Where a vote item is in the writes that count it (see the module notes). Items
/// written before the attribute existed have none and count as counted.
pub(super) const VOTE_STATE: &str = "vote_state";
const PENDING: &str = "pending";
const COUNTED: &str = "counted";
pub(super) const REMOVING: &str = "removing";

/// What an upvote did.
#[derive(Debug, Clone, PartialEq)]
pub enum VoteOutcome {
    /// The vote counts; the question as the vote left it.
    Counted(Box<Question>),
    /// The user's vote was there already; nothing changed.
    AlreadyVoted,
    /// The question is hidden or not approved; nothing changed.
    NotVotable,
}

/// A class's question figures as its items hold them (see [`Store::settle_questions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuestionTally {
    pub questions: i64,
    pub answered: i64,
    pub upvotes: i64,
}

/// What withdrawing an upvote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnvoteOutcome {
    Removed,
    /// There was no counted vote to withdraw; nothing changed.
    NotVoted,
}

/// `update` holds only for a vote that is counted.
fn counted_vote(update: Update) -> Update {
    update.require(
        "(attribute_not_exists({a0}) OR {a0} = {0})",
        &[VOTE_STATE],
        vec![s(COUNTED)],
    )
}

/// `update` holds only for a question that exists, is visible, and is open or answered:
/// one that may be voted on or highlighted.
fn open_and_visible(update: Update) -> Update {
    update
        .exists()
        .require_eq("hidden", AttributeValue::Bool(false))
        .require_in(
            "status",
            vec![
                status(QuestionStatus::Open),
                status(QuestionStatus::Answered),
            ],
        )
}

fn status(value: QuestionStatus) -> AttributeValue {
    s(value.as_str())
}

impl Store {
    /// Counts a new question on the stream, which must be live
    /// ([`StoreError::ConditionFailed`] otherwise), then stores it: two single-item
    /// writes, so a burst of questions meets no transaction on the stream item.
    pub async fn ask(&self, question: &Question) -> Result<(), StoreError> {
        let pk = keys::stream_pk(&question.stream_id);
        let counted = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .add("questions_count", 1);
        self.update(pk.clone(), STREAM_SK.into(), counted).await?;
        let item = keyed_item(
            question,
            pk.clone(),
            keys::question_sk(&question.id),
            "question",
        )?;
        if let Err(err) = self.put_new(item).await {
            // The id is new, so only a failed call lands here: the count is given back
            // while the stream is open (after the stop it stays one high).
            let uncounted = Update::new()
                .exists()
                .while_open()
                .add("questions_count", -1);
            if let Err(undo) = self.update(pk, STREAM_SK.into(), uncounted).await {
                tracing::warn!(stream = %question.stream_id, error = %undo, "question count not given back");
            }
            return Err(err);
        }
        Ok(())
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
            limit: 500,
            ..QuerySpec::stream_items(stream_id, keys::QUESTION_PREFIX)
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
            projection: None,
        };
        let items = self.query_all(spec, usize::MAX).await?;
        Ok(items
            .iter()
            .filter(|i| {
                i.get(VOTE_STATE)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    != Some(REMOVING)
            })
            .filter_map(|i| {
                i.get(GSI2SK)?
                    .as_s()
                    .ok()?
                    .strip_prefix(prefix.as_str())
                    .map(str::to_string)
            })
            .collect())
    }

    /// Records a user's upvote with four single-item writes (see the module notes).
    pub async fn upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<VoteOutcome, StoreError> {
        let pk = keys::stream_pk(stream_id);
        let vote_sk = keys::vote_sk(question_id, user_id);
        let mut vote = keys::key(pk.clone(), vote_sk.clone());
        for (attr, value) in [
            (KIND, s("vote")),
            (GSI2PK, s(keys::user_pk(user_id))),
            (GSI2SK, s(keys::vote_ref(stream_id, question_id))),
            ("question_id", s(question_id)),
            ("user_id", s(user_id)),
            ("voted_at", time(now)),
            (VOTE_STATE, s(PENDING)),
        ] {
            vote.insert(attr.into(), value);
        }
        match self.put_new(vote).await {
            Err(StoreError::ConditionFailed) => return Ok(VoteOutcome::AlreadyVoted),
            other => other?,
        }
        let votable = open_and_visible(Update::new()).add("upvotes", 1);
        let question_sk = keys::question_sk(question_id);
        let question: Question = match self.update(pk.clone(), question_sk.clone(), votable).await {
            Err(StoreError::ConditionFailed) => {
                self.drop_vote(&pk, &vote_sk, PENDING).await?;
                return Ok(VoteOutcome::NotVotable);
            }
            other => from_item(other?)?,
        };
        let counted = Update::new().exists().while_open().add("upvotes_count", 1);
        if let Err(err) = self.update(pk.clone(), STREAM_SK.into(), counted).await {
            if matches!(err, StoreError::ConditionFailed) {
                let uncount = Update::new().exists().add("upvotes", -1);
                self.update(pk.clone(), question_sk, uncount).await?;
                self.drop_vote(&pk, &vote_sk, PENDING).await?;
            }
            return Err(self.finished_or(stream_id, err).await);
        }
        self.set_vote_state(&pk, &vote_sk, PENDING, COUNTED).await?;
        Ok(VoteOutcome::Counted(Box::new(question)))
    }

    /// Withdraws a user's upvote with four single-item writes (see the module notes).
    pub async fn remove_upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
    ) -> Result<UnvoteOutcome, StoreError> {
        let pk = keys::stream_pk(stream_id);
        let vote_sk = keys::vote_sk(question_id, user_id);
        let withdrawing = counted_vote(Update::new().exists()).set(VOTE_STATE, s(REMOVING));
        match self.update(pk.clone(), vote_sk.clone(), withdrawing).await {
            Err(StoreError::ConditionFailed) => return Ok(UnvoteOutcome::NotVoted),
            other => other?,
        };
        let uncounted = Update::new().exists().while_open().add("upvotes_count", -1);
        if let Err(err) = self.update(pk.clone(), STREAM_SK.into(), uncounted).await {
            if matches!(err, StoreError::ConditionFailed) {
                done_unless_failed(self.set_vote_state(&pk, &vote_sk, REMOVING, COUNTED).await)?;
            }
            return Err(self.finished_or(stream_id, err).await);
        }
        let uncount = Update::new().exists().add("upvotes", -1);
        done_unless_failed(
            self.update(pk.clone(), keys::question_sk(question_id), uncount)
                .await,
        )?;
        self.drop_vote(&pk, &vote_sk, REMOVING).await?;
        Ok(UnvoteOutcome::Removed)
    }

    /// Deletes a vote item that is still in `state`.
    async fn drop_vote(&self, pk: &str, vote_sk: &str, state: &str) -> Result<(), StoreError> {
        let condition = Update::new().require_eq(VOTE_STATE, s(state));
        done_unless_failed(
            self.delete_where(pk.to_string(), vote_sk.to_string(), condition)
                .await,
        )
    }

    async fn set_vote_state(
        &self,
        pk: &str,
        vote_sk: &str,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        let update = Update::new()
            .require_eq(VOTE_STATE, s(from))
            .set(VOTE_STATE, s(to));
        self.update(pk.to_string(), vote_sk.to_string(), update)
            .await
            .map(|_| ())
    }

    /// Brings a class's question and vote counts back to what its items hold, when no
    /// request of the class can be between its writes (the process that served them
    /// restarted): a vote left `pending` counts, one left `removing` goes, each
    /// question's `upvotes` and the stream's `questions_count`,
    /// `questions_answered_count` and `upvotes_count` become the counts of the items.
    pub async fn settle_questions(&self, stream_id: &str) -> Result<QuestionTally, StoreError> {
        let pk = keys::stream_pk(stream_id);
        let spec = |prefix| QuerySpec::stream_items(stream_id, prefix);
        let questions: Vec<Question> = self
            .query_all(spec(keys::QUESTION_PREFIX), usize::MAX)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        let mut votes_per_question = std::collections::HashMap::<String, i64>::new();
        for vote in self.query_all(spec(keys::VOTE_PREFIX), usize::MAX).await? {
            let text = |attr: &str| vote.get(attr).and_then(|v| v.as_s().ok()).cloned();
            let (Some(sk), Some(question_id)) = (text(crate::table::SK), text("question_id"))
            else {
                continue;
            };
            match text(VOTE_STATE).as_deref() {
                Some(REMOVING) => self.drop_vote(&pk, &sk, REMOVING).await?,
                state => {
                    if state == Some(PENDING) {
                        done_unless_failed(self.set_vote_state(&pk, &sk, PENDING, COUNTED).await)?;
                    }
                    *votes_per_question.entry(question_id).or_default() += 1;
                }
            }
        }
        let mut tally = QuestionTally::default();
        for question in &questions {
            let votes = votes_per_question.get(&question.id).copied().unwrap_or(0);
            if question.upvotes != votes {
                let recounted = Update::new().exists().set("upvotes", n(votes));
                self.update(pk.clone(), keys::question_sk(&question.id), recounted)
                    .await?;
            }
            tally.questions += 1;
            tally.answered += i64::from(question.answered_at.is_some());
            tally.upvotes += votes;
        }
        let recounted = Update::new()
            .exists()
            .set("questions_count", n(tally.questions))
            .set("questions_answered_count", n(tally.answered))
            .set("upvotes_count", n(tally.upvotes));
        self.update(pk, STREAM_SK.into(), recounted).await?;
        Ok(tally)
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
        // The question keeps when it was last highlighted, for the class's replay.
        let question = open_and_visible(Update::new())
            .set("highlighted_at", time(now))
            .into_transact(
                self.table(),
                keys::stream_pk(stream_id),
                keys::question_sk(question_id),
            );
        self.transact(vec![stream, question])
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

#[cfg(test)]
mod tests {
    use futures::future::join_all;

    use super::*;
    use crate::model::{Stream, now};
    use crate::testing::{TestEnv, teacher_stream};

    /// A live stream with one open question by `asker`.
    async fn live_question(store: &Store) -> (Stream, Question) {
        let at = now();
        let stream = teacher_stream(store, true, true).await;
        let question = Question {
            id: crate::model::new_id(),
            stream_id: stream.id.clone(),
            user_id: "asker".into(),
            text: "why?".into(),
            status: QuestionStatus::Open,
            created_at: at,
            updated_at: at,
            ..Default::default()
        };
        store.ask(&question).await.unwrap();
        (stream, question)
    }

    async fn counts(store: &Store, stream: &Stream, question: &Question) -> (i64, i64) {
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        let question = store
            .question(&stream.id, &question.id)
            .await
            .unwrap()
            .unwrap();
        (stream.upvotes_count, question.upvotes)
    }

    #[tokio::test]
    async fn settling_after_a_restart_makes_every_count_equal_its_items() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, question) = live_question(store).await;
        let pk = keys::stream_pk(&stream.id);
        store
            .upvote(&stream.id, &question.id, "u1", now())
            .await
            .unwrap();
        // Killed after the question counted the vote, before the stream did.
        store
            .upvote(&stream.id, &question.id, "u2", now())
            .await
            .unwrap();
        let uncounted = Update::new().add("upvotes_count", -1);
        store
            .update(pk.clone(), STREAM_SK.into(), uncounted)
            .await
            .unwrap();
        store
            .set_vote_state(&pk, &keys::vote_sk(&question.id, "u2"), COUNTED, PENDING)
            .await
            .unwrap();
        // Killed while withdrawing, after the stream let the vote go.
        store
            .set_vote_state(&pk, &keys::vote_sk(&question.id, "u1"), COUNTED, REMOVING)
            .await
            .unwrap();
        let uncounted = Update::new().add("upvotes_count", -1);
        store
            .update(pk.clone(), STREAM_SK.into(), uncounted)
            .await
            .unwrap();
        // Killed after counting a question, before storing it.
        let counted = Update::new().add("questions_count", 1);
        store.update(pk, STREAM_SK.into(), counted).await.unwrap();

        let tally = store.settle_questions(&stream.id).await.unwrap();
        assert_eq!(
            tally,
            QuestionTally {
                questions: 1,
                answered: 0,
                upvotes: 1
            }
        );
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!((stream.questions_count, stream.upvotes_count), (1, 1));
        let question = store
            .question(&stream.id, &question.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(question.upvotes, 1);
        assert_eq!(
            store.votes_of_user(&stream.id, "u2").await.unwrap(),
            std::slice::from_ref(&question.id)
        );
        assert!(
            store
                .votes_of_user(&stream.id, "u1")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_class_voting_at_once_is_counted_exactly_without_a_transaction() {
        let env = TestEnv::start().await;
        let (store, operations) = env.counting_store();
        let (stream, question) = live_question(&store).await;
        let voters: Vec<String> = (0..200).map(|i| format!("student-{i}")).collect();
        // Every student votes once and 50 of them twice, all at the same moment.
        let votes = voters
            .iter()
            .chain(voters.iter().take(50))
            .map(|user| store.upvote(&stream.id, &question.id, user, now()));
        let outcomes = join_all(votes).await;
        let counted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(VoteOutcome::Counted(_))))
            .count();
        let again = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(VoteOutcome::AlreadyVoted)))
            .count();
        assert_eq!((counted, again), (200, 50), "{outcomes:?}");
        assert_eq!(counts(&store, &stream, &question).await, (200, 200));
        assert_eq!(operations.count("TransactWriteItems"), 0);
        assert!(operations.count("UpdateItem") >= 600);

        let withdrawals = voters
            .iter()
            .take(80)
            .chain(voters.iter().take(20))
            .map(|user| store.remove_upvote(&stream.id, &question.id, user));
        let outcomes = join_all(withdrawals).await;
        let removed = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(UnvoteOutcome::Removed)))
            .count();
        assert_eq!(removed, 80, "{outcomes:?}");
        assert_eq!(counts(&store, &stream, &question).await, (120, 120));
        assert_eq!(operations.count("TransactWriteItems"), 0);
        let voted = store
            .votes_of_user(&stream.id, "student-150")
            .await
            .unwrap();
        assert_eq!(voted, vec![question.id.clone()]);
        assert!(
            store
                .votes_of_user(&stream.id, "student-10")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn votes_refused_by_the_stop_or_the_question_leave_nothing_behind() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, question) = live_question(store).await;
        store
            .upvote(&stream.id, &question.id, "early", now())
            .await
            .unwrap();
        store
            .hide_question(&stream.id, &question.id, now())
            .await
            .unwrap();
        let hidden = store
            .upvote(&stream.id, &question.id, "late", now())
            .await
            .unwrap();
        assert_eq!(hidden, VoteOutcome::NotVotable);
        assert!(
            store
                .votes_of_user(&stream.id, "late")
                .await
                .unwrap()
                .is_empty()
        );

        let (stream, question) = live_question(store).await;
        store
            .upvote(&stream.id, &question.id, "early", now())
            .await
            .unwrap();
        let started = stream.started_at.unwrap();
        store
            .stop_stream(&stream.id, started, now(), None)
            .await
            .unwrap();
        let after = store.upvote(&stream.id, &question.id, "late", now()).await;
        assert!(
            matches!(after, Err(StoreError::StreamFinished)),
            "{after:?}"
        );
        let withdrawn = store.remove_upvote(&stream.id, &question.id, "early").await;
        assert!(
            matches!(withdrawn, Err(StoreError::StreamFinished)),
            "{withdrawn:?}"
        );
        assert_eq!(counts(store, &stream, &question).await, (1, 1));
        assert!(
            store
                .votes_of_user(&stream.id, "late")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.votes_of_user(&stream.id, "early").await.unwrap(),
            vec![question.id.clone()]
        );
        // The refused withdrawal was undone: the vote stays counted, and the stream's
        // end refuses every later change to it.
        let again = store.remove_upvote(&stream.id, &question.id, "early").await;
        assert!(
            matches!(again, Err(StoreError::StreamFinished)),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn a_vote_a_killed_request_left_pending_is_never_counted_twice() {
        let env = TestEnv::start().await;
        let store = env.store();
        let (stream, question) = live_question(store).await;
        // What a request killed after counting, before its last write, leaves behind.
        store
            .upvote(&stream.id, &question.id, "student", now())
            .await
            .unwrap();
        let pk = keys::stream_pk(&stream.id);
        let vote_sk = keys::vote_sk(&question.id, "student");
        store
            .set_vote_state(&pk, &vote_sk, COUNTED, PENDING)
            .await
            .unwrap();

        let again = store
            .upvote(&stream.id, &question.id, "student", now())
            .await
            .unwrap();
        assert_eq!(again, VoteOutcome::AlreadyVoted);
        let withdrawn = store
            .remove_upvote(&stream.id, &question.id, "student")
            .await
            .unwrap();
        assert_eq!(withdrawn, UnvoteOutcome::NotVoted);
        assert_eq!(counts(store, &stream, &question).await, (1, 1));
        assert_eq!(
            store.votes_of_user(&stream.id, "student").await.unwrap(),
            vec![question.id.clone()]
        );
    }
}
