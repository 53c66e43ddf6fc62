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

/// Posts `frames`, in order, to each connection, with up to `concurrency` posts in
/// flight.
pub async fn post_all(
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
