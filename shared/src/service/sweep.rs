//! The presence sweeper (an EventBridge schedule on AWS, a timer locally): ends
//! presence that nobody ended. HTTP-only viewers whose heartbeat lapsed stop
//! watching; connections that died without a `$disconnect` (a killed process, a lost
//! event) are found by asking `@connections` and disconnected; classes whose encoder
//! did not come back within the grace period end, and their channels are deleted an
//! hour after. Both are Queries on
//! sharded index partitions, never a Scan.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ApiError;
use crate::model::{IngestState, Stream, StreamStatus};
use crate::realtime::Connections;
use crate::store::Store;
use crate::video::Video;

use super::connections::{self, CONNECTION_CHECK_AFTER_SECS};
use super::presence::{self, HTTP_PRESENCE_TIMEOUT_SECS};
use super::streams;

/// What one sweep ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub http_presences_ended: usize,
    pub connections_gone: usize,
    /// Classes ended because their encoder did not come back within the grace period.
    pub classes_ended: usize,
    /// Video channels deleted some time after their class.
    pub channels_deleted: usize,
    /// Live classes whose counts were settled after a restart.
    pub classes_repaired: usize,
    /// Ended classes whose counts were settled once no request of theirs could run.
    pub classes_settled: usize,
}

/// One sweep at `now`.
pub async fn run(
    store: &Store,
    sockets: &Connections,
    video: Option<&Video>,
    now: DateTime<Utc>,
) -> Result<SweepReport, ApiError> {
    let http_cutoff = now - chrono::Duration::seconds(HTTP_PRESENCE_TIMEOUT_SECS);
    let check_cutoff = now - chrono::Duration::seconds(CONNECTION_CHECK_AFTER_SECS);
    Ok(SweepReport {
        http_presences_ended: presence::end_lapsed_http(store, http_cutoff).await?,
        connections_gone: connections::sweep(store, sockets, check_cutoff).await?,
        classes_ended: end_abandoned(store, video, now).await?,
        channels_deleted: super::video::delete_retired_channels(store, video, now).await?,
        classes_repaired: 0,
        classes_settled: settle_ended(store, now).await?,
    })
}

/// At the start of a gateway that holds no connection from before (the local stack
/// after a crash or kill): every recorded connection is gone, so each is
/// disconnected before anyone is served.
pub async fn after_restart(store: &Store) -> Result<SweepReport, ApiError> {
    let far_future = crate::model::now() + chrono::Duration::days(3650);
    let mut gone = 0;
    for connection in store.connections_checked_before(far_future).await? {
        if connections::disconnect(store, &connection.connection_id)
            .await?
            .is_some()
        {
            gone += 1;
        }
    }
    let live = store.streams_with_chat(live_streams(store).await?).await?;
    for stream in &live {
        settle_counts(store, stream).await?;
    }
    let classes_repaired = live.len();
    Ok(SweepReport {
        connections_gone: gone,
        classes_repaired,
        // Nothing of the previous run is in flight: classes it ended settle now.
        classes_settled: settle_ended(store, far_future).await?,
        ..SweepReport::default()
    })
}

/// A class's counts made equal to its items, when no request of it is in flight: its
/// chat closed up to the last number taken (a killed sender's number becomes a gap, so
/// readers no longer wait for it), votes a killed request left half-written settled.
/// Whether a count changed.
async fn settle_counts(store: &Store, stream: &Stream) -> Result<bool, ApiError> {
    let messages = store.settle_chat(&stream.id, stream.chat_seq).await?;
    let questions = store.settle_questions(&stream.id).await?;
    let changed = messages != stream.chat_messages_count
        || questions.questions != stream.questions_count
        || questions.answered != stream.questions_answered_count
        || questions.upvotes != stream.upvotes_count;
    if changed {
        tracing::warn!(
            stream = %stream.id,
            chat_messages = format!("{} -> {messages}", stream.chat_messages_count),
            questions = format!("{} -> {}", stream.questions_count, questions.questions),
            upvotes = format!("{} -> {}", stream.upvotes_count, questions.upvotes),
            "counts settled: a request was killed between its writes"
        );
    }
    Ok(changed)
}

/// How long after its stop a class is settled: longer than any request of it may run
/// (the API functions time out after 10 s), so none of its writes is still in flight.
pub const SETTLE_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// Settles the classes that ended at least [`SETTLE_AFTER`] before `now` (at most a
/// hundred a sweep) and, where a count changed, writes their final statistics again;
/// how many it settled.
pub async fn settle_ended(store: &Store, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let streams = store.unsettled_streams(now - SETTLE_AFTER, 100).await?;
    for stream in &streams {
        if settle_counts(store, stream).await? {
            let settled = super::access::load(store, &stream.id).await?;
            super::stats::write_snapshot(store, &settled).await?;
        }
        store.mark_settled(&stream.id).await?;
    }
    Ok(streams.len())
}

/// Ends the classes that went live from their encoder and whose push did not come back
/// within the grace period (the sweeper, at `now`); how many it ended.
pub async fn end_abandoned(
    store: &Store,
    video: Option<&Video>,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let mut ended = 0;
    for stream in live_streams(store).await? {
        let abandoned = stream.live_from_encoder
            && stream.ingest.state == IngestState::Reconnecting
            && stream.ingest.reconnect_deadline.is_some_and(|d| d <= now);
        if !abandoned {
            continue;
        }
        let push = stream.ingest.session_id.as_deref().unwrap_or_default();
        match streams::finish(store, video, &stream, Some(push)).await {
            Ok(_) => ended += 1,
            // Stopped by hand meanwhile.
            Err(ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

/// Every live stream, page by page.
async fn live_streams(store: &Store) -> Result<Vec<Stream>, ApiError> {
    let mut live = Vec::new();
    let mut cursor = None;
    loop {
        let (streams, next) = store
            .streams_in_status(StreamStatus::Live, cursor.as_ref(), 100)
            .await?;
        live.extend(streams);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(live),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::model::{Question, QuestionStatus, now};
    use crate::store::{Update, keys, n};
    use crate::testing::{TEACHER, TestEnv, identity, teacher_stream};

    #[tokio::test]
    async fn a_class_ended_with_a_half_written_vote_is_settled_once_nothing_can_run() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = teacher_stream(store, true, true).await;
        let question = Question {
            id: crate::model::new_id(),
            stream_id: stream.id.clone(),
            user_id: "asker".into(),
            text: "why?".into(),
            status: QuestionStatus::Open,
            created_at: now(),
            updated_at: now(),
            ..Default::default()
        };
        store.ask(&question).await.unwrap();
        store
            .upvote(&stream.id, &question.id, "u1", now())
            .await
            .unwrap();
        // A vote killed after the question counted it, before the stream did.
        let pk = keys::stream_pk(&stream.id);
        let half = Update::new().add("upvotes", 1);
        store
            .update(pk.clone(), keys::question_sk(&question.id), half)
            .await
            .unwrap();
        let mut vote = keys::key(pk, keys::vote_sk(&question.id, "u2"));
        for (name, value) in [
            ("kind", crate::store::s("vote")),
            ("question_id", crate::store::s(&question.id)),
            ("user_id", crate::store::s("u2")),
            ("vote_state", crate::store::s("pending")),
            ("voted_at", n(0)),
        ] {
            vote.insert(name.into(), value);
        }
        store
            .client()
            .put_item()
            .table_name(store.table())
            .set_item(Some(vote))
            .send()
            .await
            .unwrap();

        let teacher = identity(TEACHER, Role::Teacher);
        let ended = streams::stop(store, None, &teacher, &stream.id)
            .await
            .unwrap();
        assert_eq!(
            ended.upvotes_count, 1,
            "the stop counts what passed the gate"
        );
        assert_eq!(settle_ended(store, now()).await.unwrap(), 0, "too early");

        let later = now() + SETTLE_AFTER + chrono::Duration::seconds(1);
        assert_eq!(settle_ended(store, later).await.unwrap(), 1);
        let stats = super::super::stats::get(store, &teacher, &stream.id)
            .await
            .unwrap();
        assert_eq!(stats.upvotes_count, 2, "the items hold two votes");
        let question = store
            .question(&stream.id, &question.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(question.upvotes, 2);
        assert_eq!(settle_ended(store, later).await.unwrap(), 0, "settled once");
    }
}
