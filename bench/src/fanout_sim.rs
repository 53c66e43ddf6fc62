//! A 10,000-viewer class on the fan-out path: one change-stream batch for a stream
//! with 10,000 connections, delivered through the fan-out queue (the in-process SQS
//! and its event source mapping, as the local stack runs them) and, for comparison,
//! straight from the broadcaster, against a loopback `@connections` that answers each
//! post after a fixed delay (API Gateway's post latency, `BENCH_POST_DELAY_MS`,
//! default 20 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use livestream::auth::Role;
use livestream::model::{Connection, now};
use livestream::realtime::Connections;
use livestream::service::streams;
use livestream::testing::{TestEnv, identity, teacher_stream};
use livestream_broadcast::BroadcastState;
use livestream_broadcast::fanout::FanOut;
use local::sqs::{LocalQueue, QueueSettings};

use crate::Row;

pub const VIEWERS: usize = 10_000;
/// Fan-out workers at once (the template caps them at 20; two cores here).
const WORKERS: usize = 8;

/// A `@connections` that answers 200 after `delay`, noting when each post arrived.
struct SlowEndpoint {
    url: String,
    started: Arc<std::sync::Mutex<Option<Instant>>>,
    arrivals: Arc<std::sync::Mutex<Vec<Duration>>>,
    posts: Arc<AtomicUsize>,
}

impl SlowEndpoint {
    async fn start(delay: Duration) -> Self {
        use axum::extract::State;
        type Shared = (
            Duration,
            Arc<std::sync::Mutex<Option<Instant>>>,
            Arc<std::sync::Mutex<Vec<Duration>>>,
            Arc<AtomicUsize>,
        );
        async fn post(State((delay, started, arrivals, posts)): State<Shared>) -> &'static str {
            tokio::time::sleep(delay).await;
            if let Some(started) = *started.lock().unwrap() {
                arrivals.lock().unwrap().push(started.elapsed());
            }
            posts.fetch_add(1, Ordering::Relaxed);
            ""
        }
        let started = Arc::new(std::sync::Mutex::new(None));
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::with_capacity(VIEWERS)));
        let posts = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/@connections/{id}", axum::routing::post(post))
            .with_state((delay, started.clone(), arrivals.clone(), posts.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, app).into_future());
        Self {
            url,
            started,
            arrivals,
            posts,
        }
    }

    fn begin(&self) {
        *self.started.lock().unwrap() = Some(Instant::now());
        self.arrivals.lock().unwrap().clear();
        self.posts.store(0, Ordering::Relaxed);
    }
}

async fn connect_viewers(env: &TestEnv, stream_id: &str) {
    let connections = (0..VIEWERS).map(|i| Connection {
        connection_id: format!("sim-{i:05}"),
        stream_id: stream_id.to_string(),
        user_id: format!("viewer-{i}"),
        role: Role::Student,
        display_name: format!("Viewer {i}"),
        is_staff: false,
        connected_at: now(),
        private_ok: true,
        ttl: now().timestamp() + 3600,
    });
    futures::stream::iter(connections)
        .map(|c| async move { env.store().put_connection(&c).await.unwrap() })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// Rows: the same batch through the queue and posted directly; and a summary line.
pub async fn rows() -> (Vec<Row>, Vec<String>) {
    let delay = Duration::from_millis(
        std::env::var("BENCH_POST_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    let env = TestEnv::start().await;
    let endpoint = SlowEndpoint::start(delay).await;
    let stream = teacher_stream(env.store(), true, true).await;
    connect_viewers(&env, &stream.id).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs_url = format!("http://{}", listener.local_addr().unwrap());
    let queue = Arc::new(LocalQueue::new(
        &sqs_url,
        "fan-out",
        QueueSettings {
            max_concurrency: WORKERS,
            ..QueueSettings::default()
        },
    ));
    tokio::spawn(axum::serve(listener, local::sqs::router(queue.clone())).into_future());
    let connections = Connections::local(&endpoint.url);
    let queued = Arc::new(BroadcastState {
        fan_out: Some(FanOut::local(
            &sqs_url,
            &queue.url,
            FanOut::DEFAULT_THRESHOLD,
            FanOut::DEFAULT_PAGE_SIZE,
        )),
        ..BroadcastState::new(env.store().clone(), connections.clone())
    });
    let direct = BroadcastState::new(env.store().clone(), connections);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let worker = queued.clone();
    tokio::spawn(local::sqs::run_mapping(
        queue.clone(),
        move |event| {
            let state = worker.clone();
            async move { Ok(livestream_broadcast::fanout::handle(&state, event).await) }
        },
        stopped,
    ));

    let mut reader = env.change_stream().await;
    reader.drain().await.unwrap();
    let teacher = identity("teacher-1", Role::Teacher);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (path, state) in [("fan-out queue", &*queued), ("direct, as before", &direct)] {
        let input = serde_json::from_value(serde_json::json!({"title": path})).unwrap();
        streams::update(env.store(), None, &teacher, &stream.id, input)
            .await
            .unwrap();
        let event = reader.drain().await.unwrap();
        endpoint.begin();
        let started = Instant::now();
        let (_, report) = livestream_broadcast::handle_batch(state, event).await;
        let handled = started.elapsed();
        while endpoint.posts.load(Ordering::Relaxed) < VIEWERS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = started.elapsed();
        let arrivals = endpoint.arrivals.lock().unwrap().clone();
        notes.push(format!(
            "{VIEWERS} viewers, {path}, posts answered after {} ms: last delivery after {:.2} s, {:.0} posts/s, broadcaster busy {:.2} s ({} pages)",
            delay.as_millis(),
            last.as_secs_f64(),
            VIEWERS as f64 / last.as_secs_f64(),
            handled.as_secs_f64(),
            report.pages,
        ));
        rows.push(Row {
            name: format!("10k viewers, {path}: posts (latency to delivery)"),
            ops: VIEWERS,
            elapsed: last,
            latencies: arrivals,
        });
    }
    (rows, notes)
}
