//! The fan-out tier end to end on this machine: real change-stream records from the
//! embedded DynamoDB, the broadcaster putting pages on the in-process SQS queue
//! through `aws-sdk-sqs`, the queue's event source mapping invoking the fan-out
//! worker, and `@connections` served by a recording loopback server.

use std::sync::Arc;
use std::time::Duration;

use livestream::auth::{Authenticator, Role};
use livestream::change_stream::ChangeStreamReader;
use livestream::model::Stream;
use livestream::service::{connections, streams};
use livestream::testing::{
    RecordingManagementApi, TEST_SECRET, TestEnv, identity, teacher_stream, token,
};
use livestream_broadcast::fanout::FanOut;
use livestream_broadcast::{BatchReport, BroadcastState};
use local::sqs::{LocalQueue, QueueSettings};
use serde_json::Value;
use tokio::sync::watch;

struct Tier {
    env: TestEnv,
    management: RecordingManagementApi,
    queue: Arc<LocalQueue>,
    state: Arc<BroadcastState>,
    reader: ChangeStreamReader,
    _stop: watch::Sender<bool>,
}

impl Tier {
    /// Streams with more than `threshold` connections go through the queue, in pages
    /// of `page_size`.
    async fn start(threshold: usize, page_size: usize, settings: QueueSettings) -> Self {
        let env = TestEnv::start().await;
        let management = RecordingManagementApi::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let queue = Arc::new(LocalQueue::new(&endpoint, "fan-out", settings));
        tokio::spawn(axum::serve(listener, local::sqs::router(queue.clone())).into_future());
        let state = Arc::new(BroadcastState {
            fan_out: Some(FanOut::local(&endpoint, &queue.url, threshold, page_size)),
            ..BroadcastState::new(env.store().clone(), management.connections())
        });
        let (stop, stopped) = watch::channel(false);
        let worker = state.clone();
        tokio::spawn(local::sqs::run_mapping(
            queue.clone(),
            move |event| {
                let state = worker.clone();
                async move { Ok(livestream_broadcast::fanout::handle(&state, event).await) }
            },
            stopped,
        ));
        let reader = env.change_stream().await;
        Self {
            env,
            management,
            queue,
            state,
            reader,
            _stop: stop,
        }
    }

    async fn stream(&self) -> Stream {
        teacher_stream(self.env.store(), true, true).await
    }

    async fn connect(&self, connection_id: &str, user: &str, stream: &Stream) {
        let auth = Authenticator::hs256(TEST_SECRET, None, None).unwrap();
        connections::connect(
            self.env.store(),
            &auth,
            connection_id,
            Some(&token(user, Role::Student)),
            Some(&stream.id),
        )
        .await
        .unwrap();
    }

    /// Feeds everything written since the last call to the broadcaster.
    async fn broadcast(&mut self) -> BatchReport {
        let event = self.reader.drain().await.unwrap();
        let (response, report) = livestream_broadcast::handle_batch(&self.state, event).await;
        assert!(response.batch_item_failures.is_empty());
        report
    }

    /// Waits until the queue has nothing left to deliver (deleted or dead).
    async fn drained(&self) {
        wait_until(|| self.queue.depth() == 0).await;
    }
}

/// Polls `done` until it holds; fails after 20 s (a hang, not a timing assertion).
async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn frames(tier: &Tier, connection_id: &str) -> Vec<Value> {
    tier.management.frames(connection_id)
}

async fn rename(tier: &Tier, stream: &Stream, times: usize) {
    let teacher = identity("teacher-1", Role::Teacher);
    for i in 0..times {
        let input =
            serde_json::from_value(serde_json::json!({"title": format!("Title {i}")})).unwrap();
        streams::update(tier.env.store(), None, &teacher, &stream.id, input)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_large_stream_goes_through_the_queue_as_one_frame_per_connection() {
    let mut tier = Tier::start(3, 2, QueueSettings::default()).await;
    let large = tier.stream().await;
    let small = tier.stream().await;
    let large_ids: Vec<String> = (0..7).map(|i| format!("large-{i}")).collect();
    for (i, id) in large_ids.iter().enumerate() {
        tier.connect(id, &format!("s{i}"), &large).await;
    }
    tier.connect("small-0", "s0", &small).await;
    tier.broadcast().await;
    tier.drained().await;
    tier.management.clear();

    rename(&tier, &large, 5).await;
    rename(&tier, &small, 2).await;
    let report = tier.broadcast().await;
    assert_eq!(report.pages, 4, "7 connections in pages of 2");
    assert_eq!(report.posts, 1, "the small stream is posted directly");
    assert_eq!(frames(&tier, "small-0").len(), 1);
    tier.drained().await;

    for id in &large_ids {
        let frames = frames(&tier, id);
        assert_eq!(frames.len(), 1, "{id}: one frame for the window");
        let titles: Vec<&str> = frames[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["title"].as_str().unwrap())
            .collect();
        assert_eq!(
            titles,
            ["Title 0", "Title 1", "Title 2", "Title 3", "Title 4"]
        );
    }
    assert!(tier.queue.dead_letters().is_empty());
}

#[tokio::test]
async fn failed_posts_are_retried_through_the_queue_without_repeating_a_frame() {
    let mut tier = Tier::start(1, 2, QueueSettings::default()).await;
    let stream = tier.stream().await;
    for (id, user) in [("c0", "s0"), ("c1", "s1"), ("c2", "s2")] {
        tier.connect(id, user, &stream).await;
    }
    tier.broadcast().await;
    tier.drained().await;
    tier.management.clear();

    // As many failures as a post's attempts: the connection goes back on the queue.
    tier.management
        .fail_next("c1", livestream::realtime::POST_ATTEMPTS as usize);
    let sent_before = tier.queue.sent();
    rename(&tier, &stream, 1).await;
    let report = tier.broadcast().await;
    assert_eq!(report.pages, 2);
    wait_until(|| tier.management.frames("c1").len() == 1).await;
    tier.drained().await;
    for id in ["c0", "c1", "c2"] {
        assert_eq!(frames(&tier, id).len(), 1, "{id}");
    }
    assert_eq!(
        tier.queue.sent() - sent_before,
        2 + 1,
        "two pages, then one retry page for c1 alone"
    );
}

#[tokio::test]
async fn gone_connections_met_by_the_fan_out_worker_are_pruned() {
    let mut tier = Tier::start(1, 10, QueueSettings::default()).await;
    let stream = tier.stream().await;
    for (id, user) in [("c0", "s0"), ("c1", "s1"), ("c2", "s2")] {
        tier.connect(id, user, &stream).await;
    }
    tier.broadcast().await;
    tier.drained().await;

    tier.management.mark_gone("c1");
    rename(&tier, &stream, 1).await;
    let report = tier.broadcast().await;
    assert_eq!(report.pages, 1);
    tier.drained().await;
    let store = tier.env.store();
    assert!(store.connection("c1").await.unwrap().is_none(), "deleted");
    assert!(store.connection("c0").await.unwrap().is_some());
    let after = store.stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(after.viewer_count, 2, "its viewer stopped watching");
}

#[tokio::test]
async fn a_page_that_keeps_failing_moves_to_the_dead_letter_queue() {
    let settings = QueueSettings {
        visibility_timeout: Duration::from_millis(50),
        max_receive_count: 2,
        ..QueueSettings::default()
    };
    let tier = Tier::start(1, 10, settings).await;
    let fan_out = tier.state.fan_out.as_ref().unwrap();
    fan_out
        .client
        .send_message()
        .queue_url(&fan_out.queue_url)
        .message_body("not a page")
        .send()
        .await
        .unwrap();
    wait_until(|| tier.queue.dead_letters().len() == 1).await;
    assert_eq!(tier.queue.dead_letters(), ["not a page"]);
    assert_eq!(tier.queue.depth(), 0);
}
