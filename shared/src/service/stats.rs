//! Stream analytics: live while the stream runs, a final snapshot when it stops.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::{Stream, StreamStatus, now};
use crate::store::{Store, StoreError, keys};

use super::access;

/// The analytics of one stream. Viewer figures have the stream's names
/// (`viewer_count`, `max_viewers`, `unique_viewers`); snapshots written before the
/// rename are read through the aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StreamStats {
    pub stream_id: String,
    pub status: StreamStatus,
    /// The most viewers watching at once.
    #[serde(alias = "peak_viewers")]
    pub max_viewers: i64,
    /// Distinct users who ever watched.
    #[serde(alias = "total_unique_viewers")]
    pub unique_viewers: i64,
    /// Watching now.
    #[serde(alias = "current_viewers")]
    pub viewer_count: i64,
    /// Seconds watched by everyone, counting only time while the stream was live.
    pub total_watch_time: i64,
    /// `total_watch_time / total_unique_viewers`, in seconds.
    pub average_watch_time: i64,
    pub chat_messages_count: i64,
    pub questions_count: i64,
    pub questions_answered_count: i64,
    pub upvotes_count: i64,
    /// See [`engagement_score`].
    pub engagement_score: u32,
    /// Seconds live: final for an ended stream, running for a live one.
    pub duration: i64,
    /// When these figures were computed; for an ended stream, the final snapshot.
    pub computed_at: DateTime<Utc>,
    /// True for the snapshot written when the stream stopped.
    pub is_final: bool,
    /// The old name of `max_viewers`, kept for one release.
    #[serde(default, skip_deserializing)]
    #[schemars(extend("deprecated" = true))]
    pub peak_viewers: i64,
    /// The old name of `unique_viewers`, kept for one release.
    #[serde(default, skip_deserializing)]
    #[schemars(extend("deprecated" = true))]
    pub total_unique_viewers: i64,
    /// The old name of `viewer_count`, kept for one release.
    #[serde(default, skip_deserializing)]
    #[schemars(extend("deprecated" = true))]
    pub current_viewers: i64,
}

/// The old names of the viewer figures: answered for one release, never stored (a stored
/// old name would collide with its alias when the snapshot is read).
const OLD_NAMES: [&str; 3] = ["peak_viewers", "total_unique_viewers", "current_viewers"];

impl StreamStats {
    /// Fills the old names from the current ones.
    fn with_old_names(mut self) -> Self {
        self.peak_viewers = self.max_viewers;
        self.total_unique_viewers = self.unique_viewers;
        self.current_viewers = self.viewer_count;
        self
    }
}

/// Interactions per viewer that count as fully engaged.
const FULL_INTERACTIONS_PER_VIEWER: f64 = 3.0;

/// A 0-100 score: half of it is how much of the stream the average viewer watched
/// (`average_watch_time / duration`, capped at 1), half is how much they took part
/// (chat messages + questions + upvotes per unique viewer, divided by 3 and capped at
/// 1). A stream nobody joined scores 0.
pub fn engagement_score(
    average_watch_time: i64,
    duration: i64,
    interactions: i64,
    unique_viewers: i64,
) -> u32 {
    if unique_viewers <= 0 {
        return 0;
    }
    let watched = if duration > 0 {
        (average_watch_time as f64 / duration as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let per_viewer = interactions as f64 / unique_viewers as f64;
    let took_part = (per_viewer / FULL_INTERACTIONS_PER_VIEWER).clamp(0.0, 1.0);
    (50.0 * watched + 50.0 * took_part).round() as u32
}

/// The figures of `stream` now, from its counters and its participants.
pub async fn compute(
    store: &Store,
    stream: &Stream,
    is_final: bool,
) -> Result<StreamStats, ApiError> {
    let at = now();
    let end = stream.ended_at.unwrap_or(at);
    let duration = match (stream.status, stream.started_at) {
        (StreamStatus::Ended, _) => stream.duration.unwrap_or_default(),
        (StreamStatus::Live, Some(started)) => (at - started).num_seconds().max(0),
        _ => 0,
    };
    let participants = store.all_participants(&stream.id).await?;
    let total_watch_time: i64 = participants.iter().map(|p| p.watched_until(end)).sum();
    let unique = stream.unique_viewers;
    let average_watch_time = if unique > 0 {
        total_watch_time / unique
    } else {
        0
    };
    let interactions = stream.chat_messages_count + stream.questions_count + stream.upvotes_count;
    Ok(StreamStats {
        stream_id: stream.id.clone(),
        status: stream.status,
        max_viewers: stream.max_viewers.max(stream.viewer_count),
        unique_viewers: unique,
        viewer_count: stream.viewer_count,
        total_watch_time,
        average_watch_time,
        chat_messages_count: stream.chat_messages_count,
        questions_count: stream.questions_count,
        questions_answered_count: stream.questions_answered_count,
        upvotes_count: stream.upvotes_count,
        engagement_score: engagement_score(average_watch_time, duration, interactions, unique),
        duration,
        computed_at: at,
        is_final,
        peak_viewers: 0,
        total_unique_viewers: 0,
        current_viewers: 0,
    }
    .with_old_names())
}

/// Writes the final figures of a stream that just ended.
pub async fn write_snapshot(store: &Store, stream: &Stream) -> Result<StreamStats, ApiError> {
    let stats = compute(store, stream, true).await?;
    let mut item: crate::store::Item =
        serde_dynamo::to_item(&stats).map_err(|e| ApiError::Internal(e.to_string()))?;
    for name in OLD_NAMES {
        item.remove(name);
    }
    item.insert(
        crate::table::PK.into(),
        crate::store::s(keys::stream_pk(&stream.id)),
    );
    item.insert(crate::table::SK.into(), crate::store::s(keys::STATS_SK));
    item.insert(crate::table::KIND.into(), crate::store::s("stats"));
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("writing stats: {e}")))?;
    Ok(stats)
}

async fn snapshot(store: &Store, stream_id: &str) -> Result<Option<StreamStats>, StoreError> {
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key(
            crate::table::PK,
            crate::store::s(keys::stream_pk(stream_id)),
        )
        .key(crate::table::SK, crate::store::s(keys::STATS_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::Dynamo(e.to_string()))?
        .item;
    item.map(|i| {
        serde_dynamo::from_item(i)
            .map(StreamStats::with_old_names)
            .map_err(|e| StoreError::Malformed(e.to_string()))
    })
    .transpose()
}

/// `GET /api/livestream/{id}/stats`: the instructor and admins.
pub async fn get(store: &Store, who: &Identity, stream_id: &str) -> Result<StreamStats, ApiError> {
    let stream = access::load_with_chat(store, stream_id).await?;
    if !access::is_owner(who, &stream) && !who.is_admin() {
        return Err(ApiError::forbidden(
            "not_stream_owner",
            "only the stream's instructor and admins see its analytics",
        ));
    }
    if stream.status == StreamStatus::Ended {
        if let Some(stats) = snapshot(store, &stream.id).await? {
            return Ok(stats);
        }
        // The snapshot write failed when the stream stopped: write it now.
        return write_snapshot(store, &stream).await;
    }
    compute(store, &stream, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engagement_is_bounded_and_zero_without_viewers() {
        assert_eq!(engagement_score(0, 0, 0, 0), 0);
        assert_eq!(engagement_score(600, 600, 300, 100), 100);
        assert_eq!(engagement_score(10_000, 600, 10_000, 1), 100);
        assert_eq!(engagement_score(300, 600, 0, 10), 25);
        assert_eq!(engagement_score(0, 600, 15, 10), 25);
    }
}
