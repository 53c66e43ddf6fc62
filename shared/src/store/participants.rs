//! Participants and presence: the conditional writes that keep `viewer_count`,
//! `max_viewers` and `unique_viewers` right under a class joining at once.
//!
//! A participant is watching while its `sessions` string set is not empty. Only the
//! transitions not-watching -> watching and watching -> not-watching move the stream's
//! counters. Each transition is a conditional write of the participant item (only that
//! user writes it), followed by one atomic `ADD` on the stream item, conditioned on the
//! stream being live. Neither is a transaction: on DynamoDB a burst of transactions on
//! the stream item would cancel each other and refuse every chat message numbered
//! meanwhile. A transition the stream refuses (it ended in between) is undone or
//! closed at the end, so counters move only while live and never after the stop.
//!
//! `max_viewers` has no atomic "max" in DynamoDB, so a join's one write to the stream
//! comes in two forms: at the peak (`viewer_count >= max_viewers`) both go up, below it
//! only the count, each conditioned on its case. The peak is therefore every value the
//! count reached, kept in the same write that reached it. A request killed between the
//! participant's write and the stream's leaves the count one off; a leave never takes
//! it below zero.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{
    Cursor, QuerySpec, Store, StoreError, Update, done_unless_failed, from_item, keyed_item, n, s,
    time,
};
use crate::model::{Connection, Participant, Session, StreamStatus, sort_time};

/// What [`Store::open_first_connection`] came to.
#[derive(Debug)]
pub enum FirstConnection {
    /// Both written and the viewer counted.
    Opened,
    /// Nothing written: a connection of that id is open already.
    ConnectionExists,
    /// Nothing written: the user took part in the stream before.
    ParticipantExists,
}
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

/// Attempts of a join's counter write: each form twice.
const JOIN_COUNT_ATTEMPTS: u32 = 4;

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
                    projection: None,
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
            limit: 500,
            ..QuerySpec::stream_items(stream_id, keys::PARTICIPANT_PREFIX)
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

    /// A viewer leaves the stream's count (`viewers` is -1, or 0 to add only the time)
    /// and their watching joins its total, while it is live;
    /// [`StoreError::ConditionFailed`] when it is not, or when the count is already 0.
    async fn count_leaving_viewer(
        &self,
        stream_id: &str,
        viewers: i64,
        watched: i64,
    ) -> Result<(), StoreError> {
        if viewers == 0 && watched == 0 {
            return Ok(());
        }
        let mut update = Update::new().require_eq("status", s(StreamStatus::Live.as_str()));
        if viewers < 0 {
            update = update
                .require("{a0} > {0}", &["viewer_count"], vec![n(0)])
                .add("viewer_count", viewers);
        }
        if watched != 0 {
            update = update.add("total_watch_seconds", watched);
        }
        self.update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
            .map(|_| ())
    }

    /// The stream gains a viewer (and `unique` unique viewers) while live, and its peak
    /// follows in the same write: when the count is at the peak, both go up together
    /// (`at_peak`), otherwise only the count. `at_peak` is the form tried first; the
    /// other follows when its condition fails, so only a count crossing its peak
    /// between two attempts costs a read of the stream.
    async fn count_joining_viewer(
        &self,
        stream_id: &str,
        unique: i64,
        mut at_peak: bool,
    ) -> Result<(), StoreError> {
        for tried in 0..JOIN_COUNT_ATTEMPTS {
            let mut update = Update::new()
                .require_eq("status", s(StreamStatus::Live.as_str()))
                .add("viewer_count", 1);
            if unique != 0 {
                update = update.add("unique_viewers", unique);
            }
            update = if at_peak {
                update
                    .require(
                        "(attribute_not_exists({a1}) OR {a0} >= {a1})",
                        &["viewer_count", "max_viewers"],
                        vec![],
                    )
                    .set_offset("max_viewers", "viewer_count", 1)
            } else {
                update.require(
                    "({a0} < {a1} OR (attribute_not_exists({a0}) AND {a1} > {0}))",
                    &["viewer_count", "max_viewers"],
                    vec![n(0)],
                )
            };
            match self
                .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::ConditionFailed) => at_peak = !at_peak,
                Err(e) => return Err(e),
            }
            // Both forms failed: the stream may have stopped.
            if tried % 2 == 1 {
                let stream = self.stream(stream_id).await?;
                if stream.is_none_or(|s| s.status != StreamStatus::Live) {
                    return Err(StoreError::ConditionFailed);
                }
            }
        }
        Err(StoreError::Busy(
            "viewer count kept crossing its peak".into(),
        ))
    }

    /// A new viewer is counted ([`Self::count_joining_viewer`]). When the stream is no
    /// longer live, `undo` takes the participant's change back and the join fails with
    /// [`StoreError::StreamFinished`].
    async fn count_new_viewer(
        &self,
        stream_id: &str,
        unique: i64,
        at_peak: bool,
        undo: impl std::future::Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        match self.count_joining_viewer(stream_id, unique, at_peak).await {
            Err(StoreError::ConditionFailed) => {
                undo.await?;
                Err(StoreError::StreamFinished)
            }
            other => other,
        }
    }

    /// A user's first session in a stream: the participant is created (only if it does
    /// not exist: [`StoreError::ConditionFailed`]) and the stream gains a viewer and a
    /// unique viewer, while live ([`StoreError::StreamFinished`] otherwise).
    pub async fn enter_first(
        &self,
        participant: &Participant,
        session: &Session,
    ) -> Result<Participant, StoreError> {
        self.put_new(first_participant_item(participant, session)?)
            .await?;
        let undo = self.forget_first_session(participant);
        // A class arriving keeps the count at its peak.
        self.count_new_viewer(&participant.stream_id, 1, true, undo)
            .await?;
        Ok(participant.clone())
    }

    /// A WebSocket connection that is its user's first session in a live stream: the
    /// connection and the participant in one transaction (neither existed; both items
    /// are the user's own, so it contends with nothing), then the stream gains a viewer
    /// as in [`Self::enter_first`]. One round trip fewer than writing them apart, on
    /// the path of a class connecting at once. When the stream is no longer live, both
    /// are taken back ([`StoreError::StreamFinished`]).
    pub async fn open_first_connection(
        &self,
        connection: &Connection,
        participant: &Participant,
    ) -> Result<FirstConnection, StoreError> {
        let session = Session::Connection(connection.connection_id.clone());
        let written = self
            .transact(vec![
                self.put_new_action(super::connections::connection_item(connection)?)?,
                self.put_new_action(first_participant_item(participant, &session)?)?,
            ])
            .await;
        match written {
            Ok(()) => {}
            Err(e) if e.failed_condition_at(0) => return Ok(FirstConnection::ConnectionExists),
            Err(e) if e.failed_condition_at(1) => return Ok(FirstConnection::ParticipantExists),
            Err(e) => return Err(e),
        }
        let undo = async {
            self.forget_first_session(participant).await?;
            self.delete_connection(&connection.connection_id)
                .await
                .map(|_| ())
        };
        self.count_new_viewer(&participant.stream_id, 1, true, undo)
            .await?;
        Ok(FirstConnection::Opened)
    }

    /// Deletes the participant a refused first session created (a stop closing its
    /// period meanwhile does not keep it).
    async fn forget_first_session(&self, participant: &Participant) -> Result<(), StoreError> {
        let ours = Update::new().require_eq("joined_at", time(participant.joined_at));
        done_unless_failed(
            self.delete_where(
                keys::stream_pk(&participant.stream_id),
                keys::participant_sk(&participant.user_id),
                ours,
            )
            .await,
        )
    }

    /// A returning user starts watching again: the participant must exist and not be
    /// watching ([`StoreError::ConditionFailed`]); the stream gains a viewer while live
    /// ([`StoreError::StreamFinished`] otherwise).
    pub async fn enter_again(
        &self,
        stream_id: &str,
        user_id: &str,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<Participant, StoreError> {
        let mut participant = Update::new()
            .exists()
            .require_eq("is_watching", AttributeValue::Bool(false))
            .set("is_watching", AttributeValue::Bool(true))
            .set("watching_since", time(now))
            .add_to_set("sessions", vec![session.id()]);
        if *session == Session::Http {
            participant = with_http_presence(participant, stream_id, user_id, now);
        }
        let watching = self
            .update_participant(stream_id, user_id, participant)
            .await?;
        // Refused: the period this join opened closes empty, unless the stop closed it.
        let undo = async {
            let opened = stop_watching(
                Update::new()
                    .require_eq("is_watching", AttributeValue::Bool(true))
                    .require_eq("watching_since", time(now)),
                now,
                0,
            );
            done_unless_failed(self.update_participant(stream_id, user_id, opened).await)
        };
        // Someone coming back mostly finds the count below its peak.
        self.count_new_viewer(stream_id, 0, false, undo).await?;
        Ok(watching)
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
    /// having exactly these sessions ([`StoreError::ConditionFailed`]). When the stream
    /// ended meanwhile, the period is closed at its end instead (the stop already set
    /// the count to 0).
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
        );
        self.update_participant(stream_id, user_id, participant)
            .await?;
        match self.count_leaving_viewer(stream_id, -1, watched).await {
            Err(StoreError::ConditionFailed) => {}
            other => return other,
        }
        let Some(stream) = self.stream(stream_id).await? else {
            return Ok(());
        };
        match stream.ended_at {
            Some(ended_at) if stream.status.is_finished() && ended_at < now => {
                // The period ran past the end: it counts only up to `ended_at`.
                let counted = (ended_at - watching_since).num_seconds().max(0);
                let trimmed = Update::new()
                    .require_eq("left_at", time(now))
                    .set("left_at", time(ended_at))
                    .add("duration_watched", counted - watched);
                done_unless_failed(self.update_participant(stream_id, user_id, trimmed).await)?;
                self.add_watch_time(stream_id, counted).await
            }
            Some(_) if stream.status.is_finished() => self.add_watch_time(stream_id, watched).await,
            // Live with a count already at 0 (a join whose count was lost): only the time.
            _ => done_unless_failed(self.count_leaving_viewer(stream_id, 0, watched).await),
        }
    }

    /// Adds finished watching to the stream's total, whatever its status: the periods
    /// the stop closes are counted after it.
    async fn add_watch_time(&self, stream_id: &str, watched: i64) -> Result<(), StoreError> {
        if watched == 0 {
            return Ok(());
        }
        let update = Update::new().exists().add("total_watch_seconds", watched);
        self.update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
            .map(|_| ())
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
    /// period still being the one read ([`StoreError::ConditionFailed`]), so of a stop
    /// and a late disconnect exactly one closes it. Viewer counts do not change: the
    /// stop already set them.
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
        );
        self.update_participant(stream_id, user_id, participant)
            .await?;
        self.add_watch_time(stream_id, watched).await
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
        let stream = Update::new()
            .exists()
            .while_open()
            .add(super::chat::CHAT_RULES_VERSION, 1);
        let stream = if moderator {
            stream.add_to_set("moderator_ids", members)
        } else {
            stream.delete_from_set("moderator_ids", members)
        };
        match self
            .transact_moving_chat_rules(
                stream_id,
                vec![
                    update.into_transact(self.table(), pk.clone(), sk.clone()),
                    self.stream_counter_update(stream_id, stream),
                ],
            )
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

/// The item of a participant's first session in a stream.
fn first_participant_item(
    participant: &Participant,
    session: &Session,
) -> Result<super::Item, StoreError> {
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
    Ok(item)
}
