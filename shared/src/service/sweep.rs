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
use crate::model::{IngestState, StreamStatus};
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
    let mut classes_repaired = 0;
    let mut cursor = None;
    loop {
        let (streams, next) = store
            .streams_in_status(StreamStatus::Live, cursor.as_ref(), 100)
            .await?;
        for stream in streams {
            repair_counts(store, &stream).await?;
            classes_repaired += 1;
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(SweepReport {
        connections_gone: gone,
        classes_repaired,
        ..SweepReport::default()
    })
}

/// A live class's counts made equal to its items again, when no request of it is in
/// flight: numbers a killed sender took become gaps at once (readers no longer wait
/// for them), votes a killed request left half-written are settled.
async fn repair_counts(store: &Store, stream: &crate::model::Stream) -> Result<(), ApiError> {
    let messages = store.settle_chat(&stream.id, stream.chat_seq).await?;
    let questions = store.settle_questions(&stream.id).await?;
    if messages != stream.chat_messages_count
        || questions.questions != stream.questions_count
        || questions.upvotes != stream.upvotes_count
    {
        tracing::warn!(
            stream = %stream.id,
            chat_messages = format!("{} -> {messages}", stream.chat_messages_count),
            questions = format!("{} -> {}", stream.questions_count, questions.questions),
            upvotes = format!("{} -> {}", stream.upvotes_count, questions.upvotes),
            "counts repaired after a restart"
        );
    }
    Ok(())
}

/// Ends the classes that went live from their encoder and whose push did not come back
/// within the grace period (the sweeper, at `now`); how many it ended.
pub async fn end_abandoned(
    store: &Store,
    video: Option<&Video>,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let mut ended = 0;
    let mut cursor = None;
    loop {
        let (streams, next) = store
            .streams_in_status(StreamStatus::Live, cursor.as_ref(), 100)
            .await?;
        for stream in streams {
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
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(ended),
        }
    }
}
