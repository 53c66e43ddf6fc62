//! The broadcaster: DynamoDB Streams records in, WebSocket events out.
//!
//! For each batch: records become client events ([`changes`]); events are grouped
//! by stream; each stream's connections are listed once; each connection gets all of
//! its events of the batch in as few frames as fit (one `@connections` post where
//! possible, since every post counts against the account's API Gateway quota); posts
//! run concurrently with a bound. A 410 Gone deletes the connection and ends its
//! presence. Records whose work failed are reported as batch item failures, so only
//! they (and what follows them) are retried.

pub mod changes;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use livestream::model::Connection;
use livestream::realtime::{Connections, PostError, pack_frames};
use livestream::service::connections as connection_rules;
use livestream::store::Store;

use changes::{Audience, Outgoing, SideEffect, interpret};

/// Posts in flight at once per invocation.
pub const MAX_CONCURRENT_POSTS: usize = 64;
/// Attempts of a post that failed for a reason other than 410 Gone.
const POST_ATTEMPTS: u32 = 3;

/// What the broadcaster borrows: the table (connections) and `@connections`.
pub struct BroadcastState {
    pub store: Store,
    pub connections: Connections,
}

impl BroadcastState {
    pub async fn from_env() -> Result<Self, String> {
        Ok(Self {
            store: Store::from_env().await?,
            connections: Connections::from_env().await?,
        })
    }
}

/// How a batch went, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub events: usize,
    pub posts: usize,
    pub pruned: usize,
    pub failed_posts: usize,
}

/// The events of one stream in this batch, and the first record they came from.
struct StreamEvents {
    first_sequence: Option<String>,
    events: Vec<Outgoing>,
}

/// Handles one batch of change-stream records.
pub async fn handle(state: &BroadcastState, event: Event) -> DynamoDbEventResponse {
    let oldest = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .min();
    // Boxed: presence retry loops make the future deep and large.
    let (response, report) = Box::pin(handle_batch(state, event)).await;
    let age = oldest.and_then(|at| (livestream::model::now() - at).to_std().ok());
    livestream::telemetry::record_batch(
        report.events,
        report.posts,
        report.pruned,
        report.failed_posts,
        response.batch_item_failures.len(),
        age,
    );
    tracing::info!(
        events = report.events,
        posts = report.posts,
        pruned = report.pruned,
        failed_posts = report.failed_posts,
        failed_records = response.batch_item_failures.len(),
        "batch broadcast"
    );
    response
}

/// [`handle`], also returning what was done.
pub async fn handle_batch(
    state: &BroadcastState,
    event: Event,
) -> (DynamoDbEventResponse, BatchReport) {
    let mut report = BatchReport::default();
    let mut failed: Vec<String> = Vec::new();
    let mut by_stream: BTreeMap<String, StreamEvents> = BTreeMap::new();

    let mut after_delivery: Vec<(SideEffect, Option<String>)> = Vec::new();
    for record in &event.records {
        let sequence = record.change.sequence_number.clone();
        let interpretation = interpret(record);
        for effect in interpretation.effects {
            if effect.after_delivery() {
                after_delivery.push((effect, sequence.clone()));
                continue;
            }
            if let Err(err) = Box::pin(apply(state, &effect)).await {
                tracing::error!(error = %err, ?effect, "side effect failed");
                failed.extend(sequence.clone());
            }
        }
        for mut outgoing in interpretation.events {
            outgoing.sequence = sequence.clone();
            let group = by_stream
                .entry(outgoing.stream_id.clone())
                .or_insert_with(|| StreamEvents {
                    first_sequence: sequence.clone(),
                    events: Vec::new(),
                });
            if let Some(key) = &outgoing.coalesce_key {
                group
                    .events
                    .retain(|e| e.coalesce_key.as_ref() != Some(key));
            }
            group.events.push(outgoing);
        }
    }

    for (stream_id, group) in by_stream {
        report.events += group.events.len();
        match Box::pin(deliver(state, &stream_id, &group.events, &mut report)).await {
            Ok(()) => {}
            Err(err) => {
                tracing::error!(stream = %stream_id, error = %err, "delivery failed");
                failed.extend(group.first_sequence);
            }
        }
    }

    for (effect, sequence) in after_delivery {
        if let Err(err) = Box::pin(apply(state, &effect)).await {
            tracing::error!(error = %err, ?effect, "side effect failed");
            failed.extend(sequence);
        }
    }

    let mut response = DynamoDbEventResponse::default();
    // Lambda retries from the lowest failed sequence number; one entry is enough.
    if let Some(first) = failed.into_iter().min_by(|a, b| compare_sequence(a, b)) {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(first);
        response.batch_item_failures.push(failure);
    }
    (response, report)
}

/// Sequence numbers are decimal strings of varying length.
fn compare_sequence(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

async fn apply(state: &BroadcastState, effect: &SideEffect) -> Result<(), livestream::ApiError> {
    match effect {
        SideEffect::StreamWentLive(stream_id) => {
            connection_rules::enter_waiting_connections(&state.store, stream_id).await
        }
        SideEffect::ConnectionExpired(connection) => {
            connection_rules::end_presence(&state.store, connection).await
        }
        SideEffect::CloseStream(stream_id) => {
            for connection in state.store.stream_connections(stream_id).await? {
                connection_rules::close(
                    &state.store,
                    &state.connections,
                    &connection.connection_id,
                )
                .await?;
            }
            Ok(())
        }
        SideEffect::RevokeOutsiders(stream_id) => {
            let revoked =
                connection_rules::revoke_outsiders(&state.store, &state.connections, stream_id)
                    .await?;
            tracing::info!(stream = %stream_id, revoked, "stream turned private");
            Ok(())
        }
    }
}

/// Who may receive a stream's events now: its moderators (kept on the stream item)
/// and whether it is private. One read of the stream per stream and batch.
struct Access {
    moderators: HashSet<String>,
    private: bool,
}

async fn access(
    state: &BroadcastState,
    stream_id: &str,
) -> Result<Access, livestream::store::StoreError> {
    let stream = state.store.stream(stream_id).await?;
    Ok(Access {
        private: stream.as_ref().is_some_and(|s| !s.is_public),
        moderators: stream
            .map(|s| s.moderator_ids.into_iter().collect())
            .unwrap_or_default(),
    })
}

fn is_moderator(connection: &Connection, moderators: &HashSet<String>) -> bool {
    connection.is_staff || moderators.contains(&connection.user_id)
}

fn receives(event: &Outgoing, connection: &Connection, moderators: &HashSet<String>) -> bool {
    match &event.audience {
        Audience::Everyone => true,
        Audience::Moderators { also } => {
            is_moderator(connection, moderators)
                || also.as_deref() == Some(connection.user_id.as_str())
        }
        Audience::NotModerators => !is_moderator(connection, moderators),
    }
}

async fn deliver(
    state: &BroadcastState,
    stream_id: &str,
    events: &[Outgoing],
    report: &mut BatchReport,
) -> Result<(), livestream::store::StoreError> {
    let connections = state.store.stream_connections(stream_id).await?;
    if connections.is_empty() {
        return Ok(());
    }
    let access = access(state, stream_id).await?;
    let moderators = &access.moderators;
    let mut posts = Vec::new();
    for connection in &connections {
        // A private stream's events go only to those who may watch it, from the
        // moment it turned private (their sockets are being closed meanwhile).
        if access.private && !connection.private_ok {
            continue;
        }
        let mine: Vec<serde_json::Value> = events
            .iter()
            .filter(|e| receives(e, connection, moderators))
            .map(Outgoing::to_client_event)
            .collect();
        if mine.is_empty() {
            continue;
        }
        posts.push((connection.connection_id.clone(), pack_frames(&mine)));
    }
    let outcomes: Vec<(String, usize, Option<PostError>)> = futures::stream::iter(posts)
        .map(|(connection_id, frames)| async move {
            let mut sent = 0;
            for frame in frames {
                if let Err(err) = post_with_retry(&state.connections, &connection_id, frame).await {
                    return (connection_id, sent, Some(err));
                }
                sent += 1;
            }
            (connection_id, sent, None)
        })
        .buffer_unordered(MAX_CONCURRENT_POSTS)
        .collect()
        .await;
    for (connection_id, sent, error) in outcomes {
        report.posts += sent;
        match error {
            None => {}
            Some(PostError::Gone) => {
                report.pruned += 1;
                if let Err(err) =
                    Box::pin(connection_rules::disconnect(&state.store, &connection_id)).await
                {
                    tracing::error!(connection = %connection_id, error = %err, "pruning a gone connection failed");
                }
            }
            Some(PostError::Failed(reason)) => {
                // Not retried with the batch: that would repeat the events to everyone
                // else. The client catches up by sequence number when it reconnects.
                report.failed_posts += 1;
                tracing::warn!(connection = %connection_id, %reason, "events not delivered");
            }
        }
    }
    Ok(())
}

async fn post_with_retry(
    connections: &Connections,
    connection_id: &str,
    frame: Vec<u8>,
) -> Result<(), PostError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match connections.post(connection_id, frame.clone()).await {
            Err(PostError::Failed(reason)) if attempt < POST_ATTEMPTS => {
                tracing::warn!(connection = %connection_id, %reason, attempt, "post failed, retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// Runs the broadcaster as a Lambda.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static BroadcastState = Box::leak(Box::new(BroadcastState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Event>| async move {
            let response = handle(state, event.payload).await;
            livestream::telemetry::flush_metrics();
            Ok::<_, std::convert::Infallible>(response)
        },
    ))
    .await
}

/// Runs the presence sweeper as a Lambda (invoked by a schedule; the event's content
/// does not matter).
pub async fn serve_sweep() -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static BroadcastState = Box::leak(Box::new(BroadcastState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            // Boxed: presence retry loops make the future deep and large.
            let report = Box::pin(livestream::service::sweep::run(
                &state.store,
                &state.connections,
                livestream::model::now(),
            ))
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            tracing::info!(
                http_presences_ended = report.http_presences_ended,
                connections_gone = report.connections_gone,
                "presence sweep"
            );
            Ok::<_, lambda_runtime::Error>(report)
        },
    ))
    .await
}
