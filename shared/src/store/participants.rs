//! Participants and presence: the conditional writes and transactions that keep
//! `viewer_count`, `max_viewers` and `unique_viewers` exact under concurrency.
//!
//! A participant is watching while its `sessions` string set is not empty. Only the
//! transitions not-watching -> watching and watching -> not-watching touch the stream's
//! counters, each in one transaction with the participant's change, conditioned on the
//! participant's state, so concurrent joins and leaves can neither double-count nor
//! lose a change.
//!
//! `max_viewers` has no atomic "max" in DynamoDB. The invariant kept instead: before
//! `viewer_count` goes down, `max_viewers >= viewer_count` (a leave is conditioned on
//! it and records the peak first when it does not hold). So every value the count
//! reached is recorded before it falls, and the peak is `max(max_viewers, viewer_count)`.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{Cursor, QuerySpec, Store, StoreError, Update, from_item, keyed_item, n, s, time};
use crate::model::{Participant, Session, StreamStatus, sort_time};
use crate::table::{GSI1, GSI1PK, GSI1SK, GSI2PK, GSI2SK};

/// The HTTP session's heartbeat and its sweep-index entry.
fn with_http_presence(
    update: Update,
    stream_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Update {
    update
        .set("http_seen_at", time(now))
        .set(
            GSI1PK,
            s(keys::http_presence_pk(keys::sweep_shard(user_id))),
        )
        .set(
            GSI1SK,
            s(keys::http_presence_sk(&sort_time(now), stream_id, user_id)),
        )
}

fn without_http_presence(update: Update) -> Update {
    update.remove("http_seen_at").remove(GSI1PK).remove(GSI1SK)
}

/// The end of a watching period at `at`: every session gone, `watched` seconds added.
fn stop_watching(update: Update, at: DateTime<Utc>, watched: i64) -> Update {
    without_http_presence(
        update
            .remove("sessions")
            .remove("watching_since")
            .set("is_watching", AttributeValue::Bool(false))
            .set("left_at", time(at))
            .add("duration_watched", watched),
    )
}

/// A participant whose HTTP heartbeat lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapsedPresence {
    pub stream_id: String,
    pub user_id: String,
}

/// Index of the participant's action in presence transactions.
pub const PARTICIPANT_ACTION: usize = 0;
/// Index of the stream's action in presence transactions.
pub const STREAM_ACTION: usize = 1;

impl Store {
    pub async fn participant(
        &self,
        stream_id: &str,
        user_id: &str,
    ) -> Result<Option<Participant>, StoreError> {
        self.get_as(keys::stream_pk(stream_id), keys::participant_sk(user_id))
            .await
    }

    /// A page of a stream's participants, by user id.
    pub async fn participants(
        &self,
        stream_id: &str,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<Participant>, Option<Cursor>), StoreError> {
        let (items, next) = self
            .query_page(
                QuerySpec {
                    index: None,
                    partition_attr: crate::table::PK,
                    partition_value: keys::stream_pk(stream_id),
                    sort_attr: crate::table::SK,
                    sort_prefix: Some(keys::PARTICIPANT_PREFIX),
                    sort_after: None,
                    forward: true,
                    limit,
                },
                cursor,
            )
            .await?;
        Ok((
            items.into_iter().map(from_item).collect::<Result<_, _>>()?,
            next,
        ))
    }

    /// Every participant of a stream (for statistics), reading all pages.
    pub async fn all_participants(&self, stream_id: &str) -> Result<Vec<Participant>, StoreError> {
        let spec = QuerySpec {
            index: None,
            partition_attr: crate::table::PK,
            partition_value: keys::stream_pk(stream_id),
            sort_attr: crate::table::SK,
            sort_prefix: Some(keys::PARTICIPANT_PREFIX),
            sort_after: None,
            forward: true,
            limit: 500,
        };
        self.query_all(spec, usize::MAX)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn update_participant(
        &self,
        stream_id: &str,
        user_id: &str,
        update: Update,
    ) -> Result<Participant, StoreError> {
        from_item(
            self.update(
                keys::stream_pk(stream_id),
                keys::participant_sk(user_id),
                update,
            )
            .await?,
        )
    }

    fn stream_counter_update(&self, stream_id: &str, update: Update) -> TransactWriteItem {
        update.into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into())
    }

    /// A user's first session in a stream: the participant is created and the stream
    /// gains a viewer and a unique viewer. Requires a live stream.
    pub async fn enter_first(
        &self,
        participant: &Participant,
        session: &Session,
    ) -> Result<(), StoreError> {
        let mut item = keyed_item(
            participant,
            keys::stream_pk(&participant.stream_id),
            keys::participant_sk(&participant.user_id),
            "participant",
        )?;
        item.insert(GSI2PK.into(), s(keys::user_pk(&participant.user_id)));
        item.insert(
            GSI2SK.into(),
            s(keys::participation_ref(&participant.stream_id)),
        );
        item.insert("sessions".into(), AttributeValue::Ss(vec![session.id()]));
        if *session == Session::Http {
            let now = participant.joined_at;
            item.insert("http_seen_at".into(), time(now));
            item.insert(
                GSI1PK.into(),
                s(keys::http_presence_pk(keys::sweep_shard(
                    &participant.user_id,
                ))),
            );
            item.insert(
                GSI1SK.into(),
                s(keys::http_presence_sk(
                    &sort_time(now),
                    &participant.stream_id,
                    &participant.user_id,
                )),
            );
        }
        let put = self.put_new_action(item)?;
        let stream = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .add("viewer_count", 1)
            .add("unique_viewers", 1);
        self.transact(vec![
            put,
            self.stream_counter_update(&participant.stream_id, stream),
        ])
        .await
    }

    /// A returning user starts watching again. Requires a live stream and a participant
    /// that is not watching.
    pub async fn enter_again(
        &self,
        stream_id: &str,
        user_id: &str,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut participant = Update::new()
            .exists()
            .require_eq("is_watching", AttributeValue::Bool(false))
            .set("is_watching", AttributeValue::Bool(true))
            .set("watching_since", time(now))
            .add_to_set("sessions", vec![session.id()]);
        if *session == Session::Http {
            participant = with_http_presence(participant, stream_id, user_id, now);
        }
        let participant = participant.into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            keys::participant_sk(user_id),
        );
        let stream = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .add("viewer_count", 1);
        self.transact(vec![
            participant,
            self.stream_counter_update(stream_id, stream),
        ])
        .await
    }

    /// Another session of a user who is already watching; counters do not change.
    pub async fn add_session(
        &self,
        stream_id: &str,
        user_id: &str,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<Participant, StoreError> {
        let mut update = Update::new()
            .exists()
            .require_eq("is_watching", AttributeValue::Bool(true))
            .add_to_set("sessions", vec![session.id()]);
        if *session == Session::Http {
            update = with_http_presence(update, stream_id, user_id, now);
        }
        self.update_participant(stream_id, user_id, update).await
    }

    /// The user's remaining `sessions` all end: they stop watching, their watch time
    /// grows, and the stream loses a viewer. Conditioned on the participant still
    /// having exactly these sessions. Fails on the stream's action when the peak must
    /// be recorded first ([`Store::record_peak`]).
    pub async fn exit_last(
        &self,
        stream_id: &str,
        user_id: &str,
        sessions: &[String],
        watching_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let watched = (now - watching_since).num_seconds().max(0);
        let mut condition = "size({a0}) = {0} AND {a1} = {1}".to_string();
        let mut values = vec![n(sessions.len()), time(watching_since)];
        for (i, session) in sessions.iter().enumerate() {
            condition.push_str(&format!(" AND contains({{a0}}, {{{}}})", i + 2));
            values.push(s(session));
        }
        let participant = stop_watching(
            Update::new().require(&condition, &["sessions", "watching_since"], values),
            now,
            watched,
        )
        .into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            keys::participant_sk(user_id),
        );
        // Live only: after the stop the count is 0 and the stop closes what is open.
        let stream = Update::new()
            .require_eq("status", s(StreamStatus::Live.as_str()))
            .require("{a0} <= {a1}", &["viewer_count", "max_viewers"], vec![])
            .add("viewer_count", -1)
            .add("total_watch_seconds", watched);
        self.transact(vec![
            participant,
            self.stream_counter_update(stream_id, stream),
        ])
        .await
    }

    /// One of several sessions ends; the user keeps watching.
    pub async fn remove_session(
        &self,
        stream_id: &str,
        user_id: &str,
        session: &Session,
    ) -> Result<Participant, StoreError> {
        let mut update = Update::new()
            .require(
                "contains({a0}, {0}) AND size({a0}) > {1}",
                &["sessions"],
                vec![s(session.id()), n(1)],
            )
            .delete_from_set("sessions", vec![session.id()]);
        if *session == Session::Http {
            update = without_http_presence(update);
        }
        self.update_participant(stream_id, user_id, update).await
    }

    /// An HTTP viewer's heartbeat (a repeated join): their HTTP session stays open.
    /// Fails when they are no longer watching over HTTP.
    pub async fn http_heartbeat(
        &self,
        stream_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Participant, StoreError> {
        let update = with_http_presence(
            Update::new()
                .require_eq("is_watching", AttributeValue::Bool(true))
                .require(
                    "contains({a0}, {0})",
                    &["sessions"],
                    vec![s(Session::Http.id())],
                ),
            stream_id,
            user_id,
            now,
        );
        self.update_participant(stream_id, user_id, update).await
    }

    /// Closes a watching period that the stream's end cut short: at `ended_at`, every
    /// session gone, the watch time added to the stream's total. Conditioned on the
    /// period still being the one read, so of a stop and a late disconnect exactly one
    /// closes it. Viewer counts do not change: the stop already set them.
    pub async fn close_at_end(
        &self,
        stream_id: &str,
        user_id: &str,
        watching_since: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let watched = (ended_at - watching_since).num_seconds().max(0);
        let participant = stop_watching(
            Update::new()
                .require_eq("is_watching", AttributeValue::Bool(true))
                .require_eq("watching_since", time(watching_since)),
            ended_at,
            watched,
        )
        .into_transact(
            self.table(),
            keys::stream_pk(stream_id),
            keys::participant_sk(user_id),
        );
        let stream = Update::new().exists().add("total_watch_seconds", watched);
        self.transact(vec![
            participant,
            self.stream_counter_update(stream_id, stream),
        ])
        .await
    }

    /// Participants whose last HTTP heartbeat is older than `cutoff`.
    pub async fn lapsed_http_presences(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<LapsedPresence>, StoreError> {
        let items = self
            .sweep_index_before(GSI1, GSI1PK, GSI1SK, keys::http_presence_pk, cutoff)
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(LapsedPresence {
                    stream_id: item.get("stream_id")?.as_s().ok()?.clone(),
                    user_id: item.get("user_id")?.as_s().ok()?.clone(),
                })
            })
            .collect())
    }

    /// `max_viewers := viewer_count` when the count is above the recorded peak.
    pub async fn record_peak(&self, stream_id: &str) -> Result<(), StoreError> {
        let update = Update::new()
            .require(
                "{a0} > {a1} OR attribute_not_exists({a1})",
                &["viewer_count", "max_viewers"],
                vec![],
            )
            .copy("max_viewers", "viewer_count");
        match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
        {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets a participant's permissions; the participant must exist. A change of
    /// `is_moderator` also updates the stream's `moderator_ids` in the same transaction,
    /// so the broadcaster learns who moderates with one read of the stream.
    pub async fn set_participant_permissions(
        &self,
        stream_id: &str,
        user_id: &str,
        is_moderator: Option<bool>,
        can_chat: Option<bool>,
        can_ask_questions: Option<bool>,
    ) -> Result<Participant, StoreError> {
        let mut update = Update::new().exists();
        for (attr, value) in [
            ("is_moderator", is_moderator),
            ("can_chat", can_chat),
            ("can_ask_questions", can_ask_questions),
        ] {
            if let Some(v) = value {
                update = update.set(attr, AttributeValue::Bool(v));
            }
        }
        let (pk, sk) = (keys::stream_pk(stream_id), keys::participant_sk(user_id));
        let Some(moderator) = is_moderator else {
            return from_item(self.update_in_open_stream(stream_id, sk, update).await?);
        };
        let members = vec![user_id.to_string()];
        let stream = if moderator {
            Update::new()
                .exists()
                .while_open()
                .add_to_set("moderator_ids", members)
        } else {
            Update::new()
                .exists()
                .while_open()
                .delete_from_set("moderator_ids", members)
        };
        match self
            .transact(vec![
                update.into_transact(self.table(), pk.clone(), sk.clone()),
                self.stream_counter_update(stream_id, stream),
            ])
            .await
        {
            Err(e) if e.failed_condition_at(STREAM_ACTION) => Err(StoreError::StreamFinished),
            Err(e) if e.failed_condition_at(PARTICIPANT_ACTION) => Err(StoreError::ConditionFailed),
            Err(e) => Err(e),
            Ok(()) => self
                .get_as(pk, sk)
                .await?
                .ok_or(StoreError::ConditionFailed),
        }
    }
}
