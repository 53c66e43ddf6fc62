//! The fan-out queue as SQS runs it, in this process: the JSON protocol's
//! `SendMessage` and `SendMessageBatch` served on loopback (what the functions call
//! through `aws-sdk-sqs`), and an event source mapping that receives batches and
//! invokes `fan-out` with SQS events, deleting what succeeded. A received message is
//! invisible for the visibility timeout, then delivered again unless deleted; one
//! received more than `max_receive_count` times moves to the dead-letter queue.
//! Hand-written: no maintained crate runs an SQS-compatible queue inside a process.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, watch};

/// SQS's limit on a message, and on the bodies of one batch together.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's longest `DelaySeconds`.
const MAX_DELAY_SECONDS: u64 = 900;
/// How often the mapping looks when nothing woke it (delayed messages, retries).
const IDLE_RECEIVE_INTERVAL: Duration = Duration::from_millis(200);
const ACCOUNT: &str = "000000000000";

/// The queue's redrive policy and its event source mapping's settings.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Messages per invocation.
    pub batch_size: usize,
    /// Invocations at once.
    pub max_concurrency: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 3,
            batch_size: 1,
            max_concurrency: 8,
        }
    }
}

struct Message {
    id: String,
    body: String,
    md5: String,
    visible_at: Instant,
    receive_count: u32,
    receipt: Option<String>,
    sent_at_ms: i64,
}

#[derive(Default)]
struct Messages {
    waiting: VecDeque<Message>,
    dead: Vec<Message>,
    sent: u64,
}

/// One queue and its dead-letter queue.
pub struct LocalQueue {
    pub name: String,
    pub url: String,
    pub settings: QueueSettings,
    messages: Mutex<Messages>,
    arrived: Notify,
}

impl LocalQueue {
    /// A queue named `name` whose URL is on `endpoint`.
    pub fn new(endpoint: &str, name: &str, settings: QueueSettings) -> Self {
        Self {
            name: name.to_string(),
            url: format!("{endpoint}/{ACCOUNT}/{name}"),
            settings,
            messages: Mutex::new(Messages::default()),
            arrived: Notify::new(),
        }
    }

    /// `SendMessage`: returns the message id and the body's MD5.
    pub fn send(&self, body: String, delay: Duration) -> (String, String) {
        let md5 = format!("{:x}", md5::compute(body.as_bytes()));
        let mut messages = self.messages.lock().unwrap();
        messages.sent += 1;
        let id = format!("{:08x}-local-{}", rand::random::<u32>(), messages.sent);
        messages.waiting.push_back(Message {
            id: id.clone(),
            body,
            md5: md5.clone(),
            visible_at: Instant::now() + delay,
            receive_count: 0,
            receipt: None,
            sent_at_ms: chrono::Utc::now().timestamp_millis(),
        });
        drop(messages);
        self.arrived.notify_one();
        (id, md5)
    }

    /// `ReceiveMessage`: up to `max` visible messages, oldest first, each invisible
    /// for the visibility timeout from now on.
    pub fn receive(&self, max: usize) -> Vec<SqsMessage> {
        let now = Instant::now();
        let mut messages = self.messages.lock().unwrap();
        let Messages { waiting, dead, .. } = &mut *messages;
        let mut received = Vec::new();
        let mut i = 0;
        while i < waiting.len() && received.len() < max {
            if waiting[i].visible_at > now {
                i += 1;
                continue;
            }
            if waiting[i].receive_count >= self.settings.max_receive_count {
                let message = waiting.remove(i).expect("index is in range");
                tracing::warn!(queue = %self.name, message = %message.id, "moved to the dead-letter queue");
                dead.push(message);
                continue;
            }
            let message = &mut waiting[i];
            message.receive_count += 1;
            message.visible_at = now + self.settings.visibility_timeout;
            let receipt = format!("{}#{}", message.id, message.receive_count);
            message.receipt = Some(receipt.clone());
            received.push(self.event_message(message, receipt));
            i += 1;
        }
        received
    }

    fn event_message(&self, message: &Message, receipt: String) -> SqsMessage {
        let mut out = SqsMessage::default();
        out.message_id = Some(message.id.clone());
        out.receipt_handle = Some(receipt);
        out.body = Some(message.body.clone());
        out.md5_of_body = Some(message.md5.clone());
        out.attributes = HashMap::from([
            (
                "ApproximateReceiveCount".to_string(),
                message.receive_count.to_string(),
            ),
            ("SentTimestamp".to_string(), message.sent_at_ms.to_string()),
        ]);
        out.event_source = Some("aws:sqs".into());
        out.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{}", self.name));
        out.aws_region = Some("us-east-1".into());
        out
    }

    /// `DeleteMessage` with the receipt of the latest receive.
    pub fn delete(&self, receipt: &str) -> bool {
        let mut messages = self.messages.lock().unwrap();
        let before = messages.waiting.len();
        messages
            .waiting
            .retain(|m| m.receipt.as_deref() != Some(receipt));
        messages.waiting.len() < before
    }

    /// Messages in the queue, visible or not.
    pub fn depth(&self) -> usize {
        self.messages.lock().unwrap().waiting.len()
    }

    /// Messages sent to the queue since it started.
    pub fn sent(&self) -> u64 {
        self.messages.lock().unwrap().sent
    }

    /// Bodies of the messages in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        let messages = self.messages.lock().unwrap();
        messages.dead.iter().map(|m| m.body.clone()).collect()
    }

    fn next_visible_in(&self) -> Option<Duration> {
        let now = Instant::now();
        let messages = self.messages.lock().unwrap();
        messages
            .waiting
            .iter()
            .map(|m| m.visible_at.saturating_duration_since(now))
            .min()
    }
}

fn sqs_error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            ("content-type", "application/x-amz-json-1.0"),
            (
                "x-amzn-query-error",
                &format!("AWS.SimpleQueueService.{code};Sender"),
            ),
        ],
        json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": message }).to_string(),
    )
        .into_response()
}

/// An entry's `DelaySeconds`, or `None` when SQS would refuse it.
fn delay_of(entry: &Value) -> Option<Duration> {
    let seconds = entry["DelaySeconds"].as_u64().unwrap_or(0);
    (seconds <= MAX_DELAY_SECONDS).then(|| Duration::from_secs(seconds))
}

fn bad_delay() -> Response {
    sqs_error(
        "InvalidParameterValue",
        "DelaySeconds must be between 0 and 900",
    )
}

/// `POST /` with an `X-Amz-Target` of `AmazonSQS.<Action>` and a JSON body.
async fn handle(
    State(queue): State<Arc<LocalQueue>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return sqs_error("InvalidParameterValue", "the body is not JSON");
    };
    if request["QueueUrl"].as_str() != Some(queue.url.as_str()) {
        return sqs_error("QueueDoesNotExist", "The specified queue does not exist.");
    }
    let reply = match target {
        "AmazonSQS.SendMessage" => {
            let Some(body) = request["MessageBody"].as_str().filter(|b| !b.is_empty()) else {
                return sqs_error("MissingParameter", "MessageBody is required");
            };
            if body.len() > MAX_MESSAGE_BYTES {
                return sqs_error("InvalidParameterValue", "the message is too long");
            }
            let Some(delay) = delay_of(&request) else {
                return bad_delay();
            };
            let (id, md5) = queue.send(body.to_string(), delay);
            json!({ "MessageId": id, "MD5OfMessageBody": md5 })
        }
        "AmazonSQS.SendMessageBatch" => {
            let entries = request["Entries"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                return sqs_error("EmptyBatchRequest", "no entries");
            }
            if entries.len() > MAX_BATCH_ENTRIES {
                return sqs_error("TooManyEntriesInBatchRequest", "at most 10 entries");
            }
            let total: usize = entries
                .iter()
                .map(|e| e["MessageBody"].as_str().map_or(0, str::len))
                .sum();
            if total > MAX_MESSAGE_BYTES {
                return sqs_error("BatchRequestTooLong", "the batch is too long");
            }
            let mut successful = Vec::new();
            for entry in &entries {
                let Some(delay) = delay_of(entry) else {
                    return bad_delay();
                };
                let body = entry["MessageBody"].as_str().unwrap_or_default();
                let (id, md5) = queue.send(body.to_string(), delay);
                successful
                    .push(json!({ "Id": entry["Id"], "MessageId": id, "MD5OfMessageBody": md5 }));
            }
            json!({ "Successful": successful, "Failed": [] })
        }
        other => {
            return sqs_error(
                "UnsupportedOperation",
                &format!("{other} is not emulated locally"),
            );
        }
    };
    (
        [("content-type", "application/x-amz-json-1.0")],
        reply.to_string(),
    )
        .into_response()
}

/// The queue's SQS endpoint.
pub fn router(queue: Arc<LocalQueue>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(queue)
}

/// The event source mapping: receives batches and invokes the consumer, up to
/// `max_concurrency` at once, until `shutdown` turns true. Messages the consumer
/// reports as failed (or all of a batch whose invocation failed) stay in the queue
/// and come back after the visibility timeout.
pub async fn run_mapping<F, Fut>(
    queue: Arc<LocalQueue>,
    consumer: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SqsBatchResponse, String>> + Send + 'static,
{
    let consumer = Arc::new(consumer);
    let slots = Arc::new(Semaphore::new(queue.settings.max_concurrency.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = queue.receive(queue.settings.batch_size.max(1));
        if batch.is_empty() {
            drop(slot);
            let wait = queue
                .next_visible_in()
                .map_or(IDLE_RECEIVE_INTERVAL, |d| d.min(IDLE_RECEIVE_INTERVAL));
            tokio::select! {
                _ = queue.arrived.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            continue;
        }
        let queue = queue.clone();
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let receipts: Vec<(String, String)> = batch
                .iter()
                .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
                .collect();
            let mut event = SqsEvent::default();
            event.records = batch;
            let failed: Vec<String> = match consumer(event).await {
                Ok(response) => response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
                Err(err) => {
                    tracing::error!(queue = %queue.name, error = %err, "invocation failed");
                    receipts.iter().map(|(id, _)| id.clone()).collect()
                }
            };
            for (id, receipt) in &receipts {
                if !failed.contains(id) {
                    queue.delete(receipt);
                }
            }
            drop(slot);
        });
    }
}
