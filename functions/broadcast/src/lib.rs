//! The broadcaster: DynamoDB Streams records in, WebSocket events out.
//!
//! For each batch: records become client events ([`changes`]); events are grouped
//! by stream, and the streams of a batch are delivered concurrently; each stream's
//! connections are listed once; each connection gets all of its events of the batch in
//! as few frames as fit (one `@connections` post where possible, since every post
//! counts against the account's API Gateway quota). A stream with more connections
//! than [`fanout::FanOut::threshold`] is split into pages on the fan-out queue
//! ([`fanout`]); smaller ones are posted from here. A 410 Gone deletes the connection
//! and ends its presence. Records whose work failed are reported as batch item
//! failures, so only they (and what follows them) are retried.
//!
//! With a delivery window, a batch that posted anything takes at least that long, so
//! the next batch of the shard (the event source mapping sends a shard's batches one
//! after another) starts a window later: whatever the chat rate, a viewer gets at most
//! one frame per window, with everything of the window in it (viewer counts merged).

pub mod changes;
pub mod delivery;
pub mod fanout;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use livestream::realtime::Connections;
use livestream::service::connections as connection_rules;
use livestream::store::Store;

use changes::{Outgoing, SideEffect, interpret};
use delivery::{group, post_all, prune};
use fanout::FanOut;

/// Posts in flight at once per stream delivered from the broadcaster.
pub const MAX_CONCURRENT_POSTS: usize = 64;

/// What the broadcaster and the fan-out workers borrow: the table (connections),
/// `@connections`, and the fan-out queue.
pub struct BroadcastState {
    pub store: Store,
    pub connections: Connections,
    /// `None`: every stream is posted directly.
    pub fan_out: Option<FanOut>,
    /// The shortest time between two batches' deliveries (zero: none).
    pub window: Duration,
    /// The video service, for the sweeper's and the video events' state changes
    /// (`None`: a deployment without video).
    pub video: Option<livestream::video::Video>,
}

impl BroadcastState {
    /// Every stream posted directly, no window.
    pub fn new(store: Store, connections: Connections) -> Self {
        Self {
            store,
            connections,
            fan_out: None,
            window: Duration::ZERO,
            video: None,
        }
    }

    /// From the functions' environment, plus the fan-out queue ([`FanOut::from_env`])
    /// and `DELIVERY_WINDOW_MS` (default 0).
    pub async fn from_env() -> Result<Self, String> {
        let window = match std::env::var("DELIVERY_WINDOW_MS") {
            Ok(v) => v
                .parse()
                .map_err(|_| format!("DELIVERY_WINDOW_MS must be milliseconds, not {v:?}"))?,
            Err(_) => 0,
        };
        Ok(Self {
            store: Store::from_env().await?,
            connections: Connections::from_env().await?,
            fan_out: FanOut::from_env().await?,
            window: Duration::from_millis(window),
            video: livestream::video::Video::from_env().await?,
        })
    }
}

/// How a batch went, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub events: usize,
    /// Frames posted from the broadcaster.
    pub posts: usize,
    /// Pages put on the fan-out queue.
    pub pages: usize,
    pub pruned: usize,
    pub failed_posts: usize,
}

impl BatchReport {
    fn add(&mut self, other: &BatchReport) {
        self.events += other.events;
        self.posts += other.posts;
        self.pages += other.pages;
        self.pruned += other.pruned;
        self.failed_posts += other.failed_posts;
    }
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
        pages = report.pages,
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
    let started = Instant::now();
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

    let mut deliveries = Vec::with_capacity(by_stream.len());
    for (stream_id, group) in by_stream {
        // Sockets closed after this batch must get its events first: from here, not
        // from a queue that would deliver them later.
        let closing = after_delivery.iter().any(|(effect, _)| match effect {
            SideEffect::CloseStream(id) | SideEffect::RevokeOutsiders(id) => *id == stream_id,
            _ => false,
        });
        deliveries.push(Box::pin(deliver_stream(state, stream_id, group, !closing)));
    }
    for (stream_id, group, outcome) in futures::future::join_all(deliveries).await {
        report.events += group.events.len();
        match outcome {
            Ok(delivered) => report.add(&delivered),
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
    if report.posts + report.pages > 0 {
        // Holds this shard's next batch back until the window is over (see above).
        tokio::time::sleep(state.window.saturating_sub(started.elapsed())).await;
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
        SideEffect::AdmitEnrolled(stream_id) => {
            connection_rules::admit_enrolled(&state.store, stream_id).await
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
/// and, for a private stream, the stream itself. One read of the stream per stream
/// and batch.
struct Access {
    moderators: HashSet<String>,
    private: Option<livestream::model::Stream>,
}

async fn access(
    state: &BroadcastState,
    stream_id: &str,
) -> Result<Access, livestream::store::StoreError> {
    let stream = state.store.stream(stream_id).await?;
    Ok(Access {
        moderators: stream
            .as_ref()
            .map(|s| s.moderator_ids.iter().cloned().collect())
            .unwrap_or_default(),
        private: stream.filter(|s| !s.is_public),
    })
}

async fn deliver_stream(
    state: &BroadcastState,
    stream_id: String,
    group: StreamEvents,
    may_queue: bool,
) -> (
    String,
    StreamEvents,
    Result<BatchReport, livestream::store::StoreError>,
) {
    let outcome = deliver(state, &stream_id, &group.events, may_queue).await;
    (stream_id, group, outcome)
}

/// One stream's events to its connections: pages on the fan-out queue for a large
/// stream (when `may_queue`: its sockets are not being closed after this batch), posts
/// from here otherwise (and for pages the queue did not take).
async fn deliver(
    state: &BroadcastState,
    stream_id: &str,
    events: &[Outgoing],
    may_queue: bool,
) -> Result<BatchReport, livestream::store::StoreError> {
    let mut report = BatchReport::default();
    let mut connections = state.store.stream_recipients(stream_id).await?;
    if connections.is_empty() {
        return Ok(report);
    }
    let access = access(state, stream_id).await?;
    // A private stream's events go only to those who may watch it, from the moment
    // it turned private (their sockets are being closed meanwhile).
    if let Some(stream) = &access.private {
        let latecomers: Vec<String> = connections
            .iter()
            .filter(|c| !c.private_ok)
            .map(|c| c.connection_id.clone())
            .collect();
        // In the batch that made it private, its outsiders are closed after delivery.
        let allowed = if latecomers.is_empty() || !may_queue {
            Vec::new()
        } else {
            connection_rules::admit_latecomers(
                &state.store,
                &state.connections,
                stream,
                &latecomers,
            )
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(stream = %stream_id, error = %err, "latecomers not admitted");
                Vec::new()
            })
        };
        connections.retain(|c| c.private_ok || allowed.contains(&c.connection_id));
    }
    let mut groups = group(events, &connections, &access.moderators);
    if let Some(fan_out) = state
        .fan_out
        .as_ref()
        .filter(|f| may_queue && connections.len() > f.threshold)
    {
        let (pages, direct) = fan_out.paginate(stream_id, groups);
        let queued = pages.len();
        let refused = fan_out.enqueue(pages, 0).await;
        report.pages = queued - refused.len();
        groups = direct;
        groups.extend(refused.into_iter().map(|page| delivery::Group {
            frames: page.frames,
            connection_ids: page.connection_ids,
        }));
    }
    for group in groups {
        let posted = post_all(
            &state.connections,
            &group.frames,
            &group.connection_ids,
            MAX_CONCURRENT_POSTS,
        )
        .await;
        report.posts += posted.posts;
        // Not retried with the batch: that would repeat the events to everyone
        // else. The client catches up by sequence number when it reconnects.
        report.failed_posts += posted.failed.len();
        report.pruned += prune(&state.store, &posted.gone).await;
    }
    Ok(report)
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

/// Runs a fan-out worker as a Lambda (SQS event source, partial batch responses).
pub async fn serve_fan_out() -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static BroadcastState = Box::leak(Box::new(BroadcastState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, std::convert::Infallible>(fanout::handle(state, event.payload).await)
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
                state.video.as_ref(),
                livestream::model::now(),
            ))
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            tracing::info!(
                http_presences_ended = report.http_presences_ended,
                connections_gone = report.connections_gone,
                classes_ended = report.classes_ended,
                channels_deleted = report.channels_deleted,
                "presence sweep"
            );
            Ok::<_, lambda_runtime::Error>(report)
        },
    ))
    .await
}

/// Applies one video service event ("IVS Stream State Change" or "IVS Recording State
/// Change" from EventBridge) to its stream.
pub async fn handle_video_event(
    state: &BroadcastState,
    event: livestream::service::video::VideoEvent,
) -> Result<livestream::service::video::EventOutcome, livestream::ApiError> {
    // Boxed: the store and video service calls make the future deep and large.
    let outcome = Box::pin(livestream::service::video::on_video_event(
        &state.store,
        state.video.as_ref(),
        &event,
    ))
    .await?;
    let detail = |name: &str| {
        event
            .detail
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    tracing::info!(
        kind = %event.detail_type,
        event = ?detail("event_name").or_else(|| detail("recording_status")),
        channel = ?event.resources.as_ref().and_then(|r| r.first()),
        session = ?detail("stream_id"),
        recording = ?detail("recording_session_id"),
        outcome = ?outcome,
        "video event"
    );
    Ok(outcome)
}

/// Runs the video events function as a Lambda (an EventBridge rule on `aws.ivs`).
pub async fn serve_video_events() -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static BroadcastState = Box::leak(Box::new(BroadcastState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<livestream::service::video::VideoEvent>| async move {
            handle_video_event(state, event.payload)
                .await
                .map_err(|e| lambda_runtime::Error::from(e.to_string()))
        },
    ))
    .await
}
