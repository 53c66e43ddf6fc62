//! Turning a stream's events into frames for its connections, and posting them: the
//! part the broadcaster (small streams) and the fan-out workers (pages of large ones)
//! share.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use livestream::model::Recipient;
use livestream::realtime::{Connections, PostError, pack_frames};
use livestream::service::connections as connection_rules;
use livestream::store::Store;

use crate::changes::{Audience, Outgoing};

/// Connections that receive exactly the same frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// JSON text of each frame (one event, or an array of them).
    pub frames: Vec<String>,
    pub connection_ids: Vec<String>,
}

fn is_moderator(connection: &Recipient, moderators: &HashSet<String>) -> bool {
    connection.is_staff || moderators.contains(&connection.user_id)
}

fn receives(event: &Outgoing, connection: &Recipient, moderators: &HashSet<String>) -> bool {
    match &event.audience {
        Audience::Everyone => true,
        Audience::Moderators { also } => {
            is_moderator(connection, moderators)
                || also.as_deref() == Some(connection.user_id.as_str())
        }
        Audience::NotModerators => !is_moderator(connection, moderators),
    }
}

/// Groups connections by the events they may see (usually two groups: moderators and
/// everyone else), so each distinct set of frames is serialized once, not once per
/// connection. Connections that see none of the events are left out.
pub fn group(
    events: &[Outgoing],
    connections: &[Recipient],
    moderators: &HashSet<String>,
) -> Vec<Group> {
    let mut by_events: BTreeMap<Vec<usize>, Vec<String>> = BTreeMap::new();
    for connection in connections {
        let mine: Vec<usize> = (0..events.len())
            .filter(|&i| receives(&events[i], connection, moderators))
            .collect();
        if !mine.is_empty() {
            by_events
                .entry(mine)
                .or_default()
                .push(connection.connection_id.clone());
        }
    }
    by_events
        .into_iter()
        .map(|(indexes, connection_ids)| {
            let mine: Vec<serde_json::Value> = indexes
                .iter()
                .map(|&i| events[i].to_client_event())
                .collect();
            let frames = pack_frames(&mine)
                .into_iter()
                .map(|f| String::from_utf8(f).expect("frames are JSON text"))
                .collect();
            Group {
                frames,
                connection_ids,
            }
        })
        .collect()
}

/// What posting to a set of connections came to.
#[derive(Debug, Default)]
pub struct Posted {
    /// Frames delivered.
    pub posts: usize,
    /// Connections that answered 410 Gone.
    pub gone: Vec<String>,
    /// Connections that did not get all their frames after the SDK's retries.
    pub failed: Vec<String>,
}

/// Connections a lane of [`post_all`] takes at least: fewer are not worth a task.
const MIN_LANE: usize = 64;

/// Posts `frames`, in order, to each connection, with up to `concurrency` posts in
/// flight. A large set is split into a lane per worker thread of the runtime, each a
/// task of its own: a post costs CPU (the SDK serializes and signs it), and the posts
/// of one task all run on one core while the others idle.
pub async fn post_all(
    connections: &Connections,
    frames: &[String],
    connection_ids: &[String],
    concurrency: usize,
) -> Posted {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let lanes = workers.min(connection_ids.len() / MIN_LANE).max(1);
    if lanes == 1 {
        return post_lane(connections, frames, connection_ids, concurrency).await;
    }
    let frames: std::sync::Arc<[String]> = frames.into();
    let per_lane = connection_ids.len().div_ceil(lanes);
    let lane_concurrency = concurrency.div_ceil(lanes);
    let tasks: Vec<_> = connection_ids
        .chunks(per_lane)
        .map(|lane| {
            let connections = connections.clone();
            let frames = frames.clone();
            let ids = lane.to_vec();
            let task = tokio::spawn(async move {
                post_lane(&connections, &frames, &ids, lane_concurrency).await
            });
            (lane, task)
        })
        .collect();
    let mut posted = Posted::default();
    for (lane, task) in tasks {
        match task.await {
            Ok(lane_posted) => {
                posted.posts += lane_posted.posts;
                posted.gone.extend(lane_posted.gone);
                posted.failed.extend(lane_posted.failed);
            }
            Err(err) => {
                // Which of its posts went out is unknown: the lane is failed, to retry.
                tracing::error!(error = %err, connections = lane.len(), "a lane of posts panicked");
                posted.failed.extend(lane.iter().cloned());
            }
        }
    }
    posted
}

async fn post_lane(
    connections: &Connections,
    frames: &[String],
    connection_ids: &[String],
    concurrency: usize,
) -> Posted {
    // A loop over named futures, not a closure: closures returning borrowing futures
    // make the callers' futures fail to prove `Send` for every lifetime.
    let mut in_flight = FuturesUnordered::new();
    let mut outcomes = Vec::with_capacity(connection_ids.len());
    for connection_id in connection_ids {
        if in_flight.len() >= concurrency.max(1)
            && let Some(outcome) = in_flight.next().await
        {
            outcomes.push(outcome);
        }
        in_flight.push(post_frames(connections, frames, connection_id));
    }
    while let Some(outcome) = in_flight.next().await {
        outcomes.push(outcome);
    }
    let mut posted = Posted::default();
    for (connection_id, sent, error) in outcomes {
        posted.posts += sent;
        match error {
            None => {}
            Some(PostError::Gone) => posted.gone.push(connection_id.to_string()),
            Some(PostError::Failed(reason)) => {
                tracing::warn!(connection = %connection_id, %reason, "events not delivered");
                posted.failed.push(connection_id.to_string());
            }
        }
    }
    posted
}

/// Posts the frames to one connection, stopping at the first that fails.
async fn post_frames<'a>(
    connections: &Connections,
    frames: &[String],
    connection_id: &'a str,
) -> (&'a str, usize, Option<PostError>) {
    let mut sent = 0;
    for frame in frames {
        let frame = frame.as_bytes().to_vec();
        if let Err(err) = connections.post(connection_id, frame).await {
            return (connection_id, sent, Some(err));
        }
        sent += 1;
    }
    (connection_id, sent, None)
}

/// Deletes connections that answered 410 Gone and ends their presence; returns how
/// many were pruned.
pub async fn prune(store: &Store, gone: &[String]) -> usize {
    for connection_id in gone {
        if let Err(err) = Box::pin(connection_rules::disconnect(store, connection_id)).await {
            tracing::error!(connection = %connection_id, error = %err, "pruning a gone connection failed");
        }
    }
    gone.len()
}

#[cfg(test)]
mod tests {
    use livestream::testing::RecordingManagementApi;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_split_over_lanes_reach_each_connection_once_in_order() {
        let api = RecordingManagementApi::start().await;
        let ids: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
        for gone in ["c7", "c299"] {
            api.mark_gone(gone);
        }
        api.fail_next("c150", 10);
        let frames = vec![r#"{"n":1}"#.to_string(), r#"{"n":2}"#.to_string()];

        let posted = post_all(&api.connections(), &frames, &ids, 16).await;

        let mut gone = posted.gone.clone();
        gone.sort();
        assert_eq!(gone, ["c299", "c7"]);
        assert_eq!(posted.failed, ["c150"]);
        assert_eq!(posted.posts, 297 * 2);
        for id in ids
            .iter()
            .filter(|id| !["c7", "c299", "c150"].contains(&id.as_str()))
        {
            assert_eq!(
                api.frames(id),
                [serde_json::json!({"n": 1}), serde_json::json!({"n": 2})],
                "{id}"
            );
        }
    }
}
