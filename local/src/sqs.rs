//! The fan-out queue and its dead-letter queue as SQS runs them, in this process: the
//! JSON protocol (`X-Amz-Target: AmazonSQS.<Action>`, `application/x-amz-json-1.0`)
//! served on loopback, and an event source mapping that receives batches from the
//! fan-out queue and invokes `fan-out` with SQS events, deleting what succeeded.
//!
//! What the functions call through `aws-sdk-sqs` (`SendMessage`, `SendMessageBatch`)
//! and what an operator uses with the AWS CLI (`ListQueues`, `GetQueueUrl`,
//! `GetQueueAttributes`, `ReceiveMessage` with long polling, `DeleteMessage`,
//! `DeleteMessageBatch`, `ChangeMessageVisibility`, `PurgeQueue`,
//! `ListDeadLetterSourceQueues`) answer in SQS's wire shape, on either queue; errors
//! carry SQS's `__type`, its Query-era code in `x-amzn-query-error` (what the SDKs
//! match on) and the status of SQS's model. Other SQS actions answer
//! `UnsupportedOperation`.
//!
//! A received message is invisible for the visibility timeout, then delivered again
//! unless deleted; one received `max_receive_count` times moves to the dead-letter
//! queue (`{name}-dlq`) the next time a receive meets it, keeping its receive count
//! and gaining `DeadLetterQueueSourceArn`. Messages expire after the retention period,
//! counted from when they were first sent. Message attributes are not kept.
//! Hand-written: no maintained crate runs an SQS-compatible queue inside a process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, Semaphore, watch};

/// SQS's limit on a message, and on the bodies of one batch together (the queue's
/// `MaximumMessageSize`).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_BATCH_ENTRIES: usize = 10;
/// SQS's longest `DelaySeconds`.
const MAX_DELAY_SECONDS: i64 = 900;
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECONDS: i64 = 43_200;
/// SQS's longest long poll.
const MAX_WAIT_SECONDS: i64 = 20;
/// Messages one `ReceiveMessage` may ask for.
const MAX_RECEIVE: i64 = 10;
/// One `PurgeQueue` per queue in this long.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the mapping looks when nothing woke it (delayed messages, retries).
const IDLE_RECEIVE_INTERVAL: Duration = Duration::from_millis(200);
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
/// The dead-letter queue's name is the queue's with this after it.
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";
/// The dead-letter queue's visibility timeout: SQS's default (the template sets none).
const DEAD_LETTER_VISIBILITY: Duration = Duration::from_secs(30);
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The queue's redrive policy and retention, and its event source mapping's settings.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Messages per invocation.
    pub batch_size: usize,
    /// Invocations at once.
    pub max_concurrency: usize,
    /// How long a message stays in the queue (the template's `MessageRetentionPeriod`).
    pub message_retention: Duration,
    /// How long a message stays in the dead-letter queue, from when it was first sent.
    pub dead_letter_retention: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 3,
            batch_size: 1,
            max_concurrency: 8,
            message_retention: Duration::from_secs(3600),
            dead_letter_retention: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

struct Message {
    id: String,
    body: String,
    md5: String,
    sent_at: Instant,
    sent_at_ms: i64,
    visible_at: Instant,
    receive_count: u32,
    first_received_ms: Option<i64>,
    /// The handle of the latest receive.
    receipt: Option<String>,
    /// The queue it was moved from, in the dead-letter queue.
    source_arn: Option<String>,
}

impl Message {
    /// Sent with a delay that has not passed yet.
    fn delayed(&self, now: Instant) -> bool {
        self.receive_count == 0 && self.visible_at > now
    }

    /// Received, and neither deleted nor visible again yet.
    fn in_flight(&self, now: Instant) -> bool {
        self.receive_count > 0 && self.visible_at > now
    }
}

#[derive(Default)]
struct Messages {
    list: VecDeque<Message>,
    purged_at: Option<Instant>,
}

#[derive(Default)]
struct Queues {
    main: Messages,
    dead: Messages,
    sent: u64,
}

/// Which of the two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Main,
    DeadLetter,
}

/// A message as one receive hands it out.
struct Received {
    id: String,
    body: String,
    md5: String,
    receipt: String,
    receive_count: u32,
    sent_at_ms: i64,
    first_received_ms: i64,
    source_arn: Option<String>,
}

/// Messages by state, as `GetQueueAttributes` counts them.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    visible: usize,
    in_flight: usize,
    delayed: usize,
}

/// One queue and its dead-letter queue.
pub struct LocalQueue {
    pub name: String,
    pub url: String,
    pub arn: String,
    pub dead_letter_name: String,
    pub dead_letter_url: String,
    pub dead_letter_arn: String,
    pub settings: QueueSettings,
    /// Epoch seconds.
    created_at: i64,
    queues: Mutex<Queues>,
    /// Wakes the event source mapping (one permit kept when it is busy).
    arrived: Notify,
    /// Wakes long polls.
    changed: Notify,
}

fn arn_of(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

fn new_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

impl LocalQueue {
    /// A queue named `name` whose URL is on `endpoint`, and its dead-letter queue.
    pub fn new(endpoint: &str, name: &str, settings: QueueSettings) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        let dead_letter_name = format!("{name}{DEAD_LETTER_SUFFIX}");
        Self {
            name: name.to_string(),
            url: format!("{endpoint}/{ACCOUNT}/{name}"),
            arn: arn_of(name),
            dead_letter_url: format!("{endpoint}/{ACCOUNT}/{dead_letter_name}"),
            dead_letter_arn: arn_of(&dead_letter_name),
            dead_letter_name,
            settings,
            created_at: chrono::Utc::now().timestamp(),
            queues: Mutex::new(Queues::default()),
            arrived: Notify::new(),
            changed: Notify::new(),
        }
    }

    fn name_of(&self, which: Which) -> &str {
        match which {
            Which::Main => &self.name,
            Which::DeadLetter => &self.dead_letter_name,
        }
    }

    fn url_of(&self, which: Which) -> &str {
        match which {
            Which::Main => &self.url,
            Which::DeadLetter => &self.dead_letter_url,
        }
    }

    fn arn_of(&self, which: Which) -> &str {
        match which {
            Which::Main => &self.arn,
            Which::DeadLetter => &self.dead_letter_arn,
        }
    }

    fn visibility_of(&self, which: Which) -> Duration {
        match which {
            Which::Main => self.settings.visibility_timeout,
            Which::DeadLetter => DEAD_LETTER_VISIBILITY,
        }
    }

    fn retention_of(&self, which: Which) -> Duration {
        match which {
            Which::Main => self.settings.message_retention,
            Which::DeadLetter => self.settings.dead_letter_retention,
        }
    }

    fn named(&self, name: &str) -> Option<Which> {
        [Which::Main, Which::DeadLetter]
            .into_iter()
            .find(|w| self.name_of(*w) == name)
    }

    /// The queue a URL names. SQS finds a queue by its path, `/{account}/{name}`,
    /// whatever host the URL has (`localhost` or `127.0.0.1` alike).
    fn at_url(&self, url: &str) -> Option<Which> {
        let path = match url.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/')?..],
            None => url,
        };
        let (account, name) = path.trim_start_matches('/').split_once('/')?;
        (account == ACCOUNT).then(|| self.named(name))?
    }

    /// Drops messages past their queue's retention, counted from when they were sent.
    fn expire(&self, queues: &mut Queues, now: Instant) {
        for (which, messages) in [
            (Which::Main, &mut queues.main),
            (Which::DeadLetter, &mut queues.dead),
        ] {
            let retention = self.retention_of(which);
            let before = messages.list.len();
            messages
                .list
                .retain(|m| now.saturating_duration_since(m.sent_at) < retention);
            if messages.list.len() < before {
                tracing::warn!(queue = %self.name_of(which), expired = before - messages.list.len(), "messages past the retention period deleted");
            }
        }
    }

    /// `SendMessage`: returns the message id and the body's MD5.
    pub fn send(&self, body: String, delay: Duration) -> (String, String) {
        self.send_to(Which::Main, body, delay)
    }

    fn send_to(&self, which: Which, body: String, delay: Duration) -> (String, String) {
        let md5 = format!("{:x}", md5::compute(body.as_bytes()));
        let id = new_id();
        let now = Instant::now();
        let mut queues = self.queues.lock().unwrap();
        let messages = match which {
            Which::Main => {
                queues.sent += 1;
                &mut queues.main
            }
            Which::DeadLetter => &mut queues.dead,
        };
        messages.list.push_back(Message {
            id: id.clone(),
            body,
            md5: md5.clone(),
            sent_at: now,
            sent_at_ms: chrono::Utc::now().timestamp_millis(),
            visible_at: now + delay,
            receive_count: 0,
            first_received_ms: None,
            receipt: None,
            source_arn: None,
        });
        drop(queues);
        if which == Which::Main {
            self.arrived.notify_one();
        }
        self.changed.notify_waiters();
        (id, md5)
    }

    /// `ReceiveMessage` from the fan-out queue as the event source mapping does it: up
    /// to `max` visible messages, oldest first, each invisible for the visibility
    /// timeout from now on.
    pub fn receive(&self, max: usize) -> Vec<SqsMessage> {
        self.receive_from(Which::Main, max, None)
            .into_iter()
            .map(|m| self.event_message(m))
            .collect()
    }

    /// Up to `max` visible messages of `which`, oldest first, each invisible for
    /// `visibility` (the queue's timeout when `None`). In the main queue, a message
    /// already received `max_receive_count` times moves to the dead-letter queue
    /// instead.
    fn receive_from(
        &self,
        which: Which,
        max: usize,
        visibility: Option<Duration>,
    ) -> Vec<Received> {
        let now = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let visibility = visibility.unwrap_or_else(|| self.visibility_of(which));
        let mut queues = self.queues.lock().unwrap();
        self.expire(&mut queues, now);
        let Queues { main, dead, .. } = &mut *queues;
        let (messages, mut dead_letters) = match which {
            Which::Main => (main, Some(dead)),
            Which::DeadLetter => (dead, None),
        };
        let mut received = Vec::new();
        let mut moved = false;
        let mut i = 0;
        while i < messages.list.len() && received.len() < max {
            if messages.list[i].visible_at > now {
                i += 1;
                continue;
            }
            if let Some(dead) = dead_letters.as_deref_mut()
                && messages.list[i].receive_count >= self.settings.max_receive_count
            {
                let mut message = messages.list.remove(i).expect("index is in range");
                tracing::warn!(queue = %self.name, message = %message.id, "moved to the dead-letter queue");
                message.source_arn = Some(self.arn.clone());
                message.receipt = None;
                message.visible_at = now;
                dead.list.push_back(message);
                moved = true;
                continue;
            }
            let message = &mut messages.list[i];
            message.receive_count += 1;
            message.visible_at = now + visibility;
            let first_received_ms = *message.first_received_ms.get_or_insert(now_ms);
            let receipt = receipt_handle(self.name_of(which), &message.id, message.receive_count);
            message.receipt = Some(receipt.clone());
            received.push(Received {
                id: message.id.clone(),
                body: message.body.clone(),
                md5: message.md5.clone(),
                receipt,
                receive_count: message.receive_count,
                sent_at_ms: message.sent_at_ms,
                first_received_ms,
                source_arn: message.source_arn.clone(),
            });
            i += 1;
        }
        drop(queues);
        if moved {
            self.changed.notify_waiters();
        }
        received
    }

    fn event_message(&self, message: Received) -> SqsMessage {
        let mut out = SqsMessage::default();
        out.message_id = Some(message.id);
        out.receipt_handle = Some(message.receipt);
        out.body = Some(message.body);
        out.md5_of_body = Some(message.md5);
        out.attributes = HashMap::from([
            (
                "ApproximateReceiveCount".to_string(),
                message.receive_count.to_string(),
            ),
            ("SentTimestamp".to_string(), message.sent_at_ms.to_string()),
            ("SenderId".to_string(), ACCOUNT.to_string()),
            (
                "ApproximateFirstReceiveTimestamp".to_string(),
                message.first_received_ms.to_string(),
            ),
        ]);
        out.event_source = Some("aws:sqs".into());
        out.event_source_arn = Some(self.arn.clone());
        out.aws_region = Some(REGION.into());
        out
    }

    /// `DeleteMessage` with the receipt of the latest receive.
    pub fn delete(&self, receipt: &str) -> bool {
        self.delete_from(Which::Main, receipt).unwrap_or(false)
    }

    /// Deletes the message `receipt` came with, if that was its latest receive:
    /// `Ok(false)` when no message has it any more (SQS answers success then too),
    /// `Err` when it is no receipt handle of this queue.
    fn delete_from(&self, which: Which, receipt: &str) -> Result<bool, ()> {
        if !receipt_is_of(receipt, self.name_of(which)) {
            return Err(());
        }
        let mut queues = self.queues.lock().unwrap();
        let messages = match which {
            Which::Main => &mut queues.main,
            Which::DeadLetter => &mut queues.dead,
        };
        let before = messages.list.len();
        messages
            .list
            .retain(|m| m.receipt.as_deref() != Some(receipt));
        Ok(messages.list.len() < before)
    }

    /// `ChangeMessageVisibility`: `Err(true)` for a handle of no message in flight,
    /// `Err(false)` for no receipt handle of this queue.
    fn change_visibility(
        &self,
        which: Which,
        receipt: &str,
        timeout: Duration,
    ) -> Result<(), bool> {
        if !receipt_is_of(receipt, self.name_of(which)) {
            return Err(false);
        }
        let now = Instant::now();
        let mut queues = self.queues.lock().unwrap();
        let messages = match which {
            Which::Main => &mut queues.main,
            Which::DeadLetter => &mut queues.dead,
        };
        let message = messages
            .list
            .iter_mut()
            .find(|m| m.receipt.as_deref() == Some(receipt) && m.in_flight(now))
            .ok_or(true)?;
        message.visible_at = now + timeout;
        drop(queues);
        if timeout.is_zero() {
            if which == Which::Main {
                self.arrived.notify_one();
            }
            self.changed.notify_waiters();
        }
        Ok(())
    }

    /// `PurgeQueue`: every message goes, in flight or not; `false` when the queue was
    /// purged less than 60 seconds ago.
    fn purge(&self, which: Which) -> bool {
        let now = Instant::now();
        let mut queues = self.queues.lock().unwrap();
        let messages = match which {
            Which::Main => &mut queues.main,
            Which::DeadLetter => &mut queues.dead,
        };
        if messages
            .purged_at
            .is_some_and(|at| now.duration_since(at) < PURGE_INTERVAL)
        {
            return false;
        }
        let purged = messages.list.len();
        messages.list.clear();
        messages.purged_at = Some(now);
        tracing::info!(queue = %self.name_of(which), purged, "purged");
        true
    }

    fn counts(&self, which: Which) -> Counts {
        let now = Instant::now();
        let mut queues = self.queues.lock().unwrap();
        self.expire(&mut queues, now);
        let messages = match which {
            Which::Main => &queues.main,
            Which::DeadLetter => &queues.dead,
        };
        let mut counts = Counts::default();
        for message in &messages.list {
            if message.delayed(now) {
                counts.delayed += 1;
            } else if message.in_flight(now) {
                counts.in_flight += 1;
            } else {
                counts.visible += 1;
            }
        }
        counts
    }

    /// Messages in the queue, visible or not.
    pub fn depth(&self) -> usize {
        let mut queues = self.queues.lock().unwrap();
        self.expire(&mut queues, Instant::now());
        queues.main.list.len()
    }

    /// Messages sent to the queue since it started.
    pub fn sent(&self) -> u64 {
        self.queues.lock().unwrap().sent
    }

    /// Bodies of the messages in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        let mut queues = self.queues.lock().unwrap();
        self.expire(&mut queues, Instant::now());
        queues.dead.list.iter().map(|m| m.body.clone()).collect()
    }

    fn next_visible_in(&self, which: Which) -> Option<Duration> {
        let now = Instant::now();
        let queues = self.queues.lock().unwrap();
        let messages = match which {
            Which::Main => &queues.main,
            Which::DeadLetter => &queues.dead,
        };
        messages
            .list
            .iter()
            .map(|m| m.visible_at.saturating_duration_since(now))
            .min()
    }

    /// `GetQueueAttributes` of `which`: every attribute SQS has for a standard queue
    /// configured as this one is, values as strings.
    fn attributes(&self, which: Which) -> Vec<(&'static str, String)> {
        let counts = self.counts(which);
        let retention = self.retention_of(which).as_secs();
        let mut attributes = vec![
            ("QueueArn", self.arn_of(which).to_string()),
            ("ApproximateNumberOfMessages", counts.visible.to_string()),
            (
                "ApproximateNumberOfMessagesNotVisible",
                counts.in_flight.to_string(),
            ),
            (
                "ApproximateNumberOfMessagesDelayed",
                counts.delayed.to_string(),
            ),
            ("CreatedTimestamp", self.created_at.to_string()),
            ("LastModifiedTimestamp", self.created_at.to_string()),
            (
                "VisibilityTimeout",
                self.visibility_of(which).as_secs().to_string(),
            ),
            ("MaximumMessageSize", MAX_MESSAGE_BYTES.to_string()),
            ("MessageRetentionPeriod", retention.to_string()),
            ("DelaySeconds", "0".to_string()),
            ("ReceiveMessageWaitTimeSeconds", "0".to_string()),
            // Nothing is encrypted here: the messages live in this process's memory.
            ("SqsManagedSseEnabled", "false".to_string()),
        ];
        if which == Which::Main {
            attributes.push((
                "RedrivePolicy",
                json!({
                    "deadLetterTargetArn": self.dead_letter_arn,
                    "maxReceiveCount": self.settings.max_receive_count,
                })
                .to_string(),
            ));
        }
        attributes
    }
}

/// An opaque handle for one receive of one message of queue `queue`.
fn receipt_handle(queue: &str, message_id: &str, receive_count: u32) -> String {
    use base64::Engine;
    let nonce: u64 = rand::random();
    base64::engine::general_purpose::STANDARD
        .encode(format!("{queue}|{message_id}|{receive_count}|{nonce:016x}"))
}

/// Whether `receipt` is a handle [`receipt_handle`] made for `queue`.
fn receipt_is_of(receipt: &str, queue: &str) -> bool {
    use base64::Engine;
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(receipt) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let parts: Vec<&str> = decoded.split('|').collect();
    parts.len() == 4 && parts[0] == queue && parts[2].parse::<u32>().is_ok()
}

/// An SQS error as the JSON protocol carries it: `__type` names the model's shape,
/// `x-amzn-query-error` the Query-era code and fault (what the SDKs match on).
#[derive(Debug)]
struct SqsError {
    shape: &'static str,
    code: &'static str,
    status: StatusCode,
    message: String,
}

impl SqsError {
    fn new(shape: &'static str, code: &'static str, status: u16, message: String) -> Self {
        Self {
            shape,
            code,
            status: StatusCode::from_u16(status).expect("a valid status"),
            message,
        }
    }

    fn queue_does_not_exist() -> Self {
        Self::new(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            400,
            "The specified queue does not exist.".into(),
        )
    }

    fn invalid_parameter(message: String) -> Self {
        Self::new(
            "InvalidParameterValue",
            "InvalidParameterValue",
            400,
            message,
        )
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            "MissingParameter",
            400,
            format!("The request must contain the parameter {name}."),
        )
    }

    fn serialization(message: String) -> Self {
        Self::new(
            "SerializationException",
            "SerializationException",
            400,
            message,
        )
    }

    fn receipt_handle_is_invalid(receipt: &str) -> Self {
        Self::new(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            404,
            format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
        )
    }

    fn batch(shape: &'static str, code: &'static str, message: &str) -> Self {
        Self::new(shape, code, 400, message.to_string())
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                ("content-type", CONTENT_TYPE.to_string()),
                ("x-amzn-query-error", format!("{};Sender", self.code)),
                ("x-amzn-requestid", new_id()),
            ],
            json!({ "__type": format!("com.amazonaws.sqs#{}", self.shape), "message": self.message })
                .to_string(),
        )
            .into_response()
    }
}

type Reply = Result<Value, SqsError>;

/// A member that must be a string when present.
fn string<'a>(request: &'a Value, name: &str) -> Result<Option<&'a str>, SqsError> {
    match &request[name] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(SqsError::serialization(format!("{name} must be a string"))),
    }
}

fn required<'a>(request: &'a Value, name: &str) -> Result<&'a str, SqsError> {
    string(request, name)?.ok_or_else(|| SqsError::missing_parameter(name))
}

/// An integer member within `low..=high` when present.
fn integer(request: &Value, name: &str, low: i64, high: i64) -> Result<Option<i64>, SqsError> {
    let value = match &request[name] {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| SqsError::serialization(format!("{name} must be an integer")))?,
        _ => {
            return Err(SqsError::serialization(format!(
                "{name} must be an integer"
            )));
        }
    };
    if !(low..=high).contains(&value) {
        return Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}."
        )));
    }
    Ok(Some(value))
}

fn string_list(request: &Value, name: &str) -> Result<Vec<String>, SqsError> {
    match &request[name] {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SqsError::serialization(format!("{name} must hold strings")))
            })
            .collect(),
        _ => Err(SqsError::serialization(format!("{name} must be a list"))),
    }
}

fn seconds(value: Option<i64>) -> Option<Duration> {
    value.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// Why SQS refuses a message body, if it does.
fn body_problem(body: &str) -> Option<SqsError> {
    if body.is_empty() {
        return Some(SqsError::invalid_parameter(
            "The request must contain the parameter MessageBody.".into(),
        ));
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Some(SqsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes."
        )));
    }
    let refused = body.chars().find(|c| {
        let c = u32::from(*c);
        (c < 0x20 && ![0x9, 0xA, 0xD].contains(&c)) || c == 0xFFFE || c == 0xFFFF
    })?;
    Some(SqsError::new(
        "InvalidMessageContents",
        "InvalidMessageContents",
        400,
        format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            u32::from(refused)
        ),
    ))
}

/// A batch's entries, checked as SQS checks them before looking at any entry.
/// `kind` names the entries in messages (`SendMessageBatchRequestEntry`).
fn batch_entries(request: &Value, kind: &str) -> Result<Vec<Value>, SqsError> {
    let entries = match &request["Entries"] {
        Value::Null => Vec::new(),
        Value::Array(entries) => entries.clone(),
        _ => return Err(SqsError::serialization("Entries must be a list".into())),
    };
    if entries.is_empty() {
        return Err(SqsError::batch(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            &format!("There should be at least one {kind} in the request."),
        ));
    }
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(SqsError::batch(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            &format!(
                "Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut ids = HashSet::new();
    for entry in &entries {
        let id = entry["Id"].as_str().unwrap_or_default();
        let well_formed = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(SqsError::batch(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !ids.insert(id.to_string()) {
            return Err(SqsError::batch(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                &format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn failed_entry(id: &Value, error: SqsError) -> Value {
    json!({ "Id": id, "SenderFault": true, "Code": error.code, "Message": error.message })
}

/// Queue attribute names SQS knows (`QueueAttributeName`).
const QUEUE_ATTRIBUTE_NAMES: &[&str] = &[
    "All",
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

/// SQS actions that exist but are not served here.
const NOT_EMULATED: &[&str] = &[
    "AddPermission",
    "CancelMessageMoveTask",
    "ChangeMessageVisibilityBatch",
    "CreateQueue",
    "DeleteQueue",
    "ListMessageMoveTasks",
    "ListQueueTags",
    "RemovePermission",
    "SetQueueAttributes",
    "StartMessageMoveTask",
    "TagQueue",
    "UntagQueue",
];

impl LocalQueue {
    fn queue_of(&self, request: &Value) -> Result<Which, SqsError> {
        let url = required(request, "QueueUrl")?;
        self.at_url(url).ok_or_else(SqsError::queue_does_not_exist)
    }

    fn list_queues(&self, request: &Value) -> Reply {
        let prefix = string(request, "QueueNamePrefix")?.unwrap_or_default();
        let max = integer(request, "MaxResults", 1, 1000)?;
        let start = match string(request, "NextToken")? {
            None => 0,
            Some(token) => token
                .strip_prefix("queues-from-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| SqsError::invalid_parameter("Invalid NextToken value.".into()))?,
        };
        let urls: Vec<&str> = [Which::Main, Which::DeadLetter]
            .into_iter()
            .filter(|w| self.name_of(*w).starts_with(prefix))
            .map(|w| self.url_of(w))
            .collect();
        let end = max.map_or(urls.len(), |m| {
            (start + m.unsigned_abs() as usize).min(urls.len())
        });
        let page = urls.get(start..end).unwrap_or_default();
        let mut reply = Map::new();
        if !page.is_empty() {
            reply.insert("QueueUrls".into(), json!(page));
        }
        if max.is_some() && end < urls.len() {
            reply.insert("NextToken".into(), json!(format!("queues-from-{end}")));
        }
        Ok(Value::Object(reply))
    }

    fn get_queue_url(&self, request: &Value) -> Reply {
        let name = required(request, "QueueName")?;
        if string(request, "QueueOwnerAWSAccountId")?.is_some_and(|owner| owner != ACCOUNT) {
            return Err(SqsError::queue_does_not_exist());
        }
        let which = self
            .named(name)
            .ok_or_else(SqsError::queue_does_not_exist)?;
        Ok(json!({ "QueueUrl": self.url_of(which) }))
    }

    fn get_queue_attributes(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let names = string_list(request, "AttributeNames")?;
        if let Some(unknown) = names
            .iter()
            .find(|n| !QUEUE_ATTRIBUTE_NAMES.contains(&n.as_str()))
        {
            return Err(SqsError::new(
                "InvalidAttributeName",
                "InvalidAttributeName",
                400,
                format!("Unknown Attribute {unknown}."),
            ));
        }
        let all = names.iter().any(|n| n == "All");
        let attributes: Map<String, Value> = self
            .attributes(which)
            .into_iter()
            .filter(|(name, _)| all || names.iter().any(|n| n == name))
            .map(|(name, value)| (name.to_string(), Value::String(value)))
            .collect();
        if attributes.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({ "Attributes": attributes }))
    }

    fn list_dead_letter_source_queues(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        integer(request, "MaxResults", 1, 1000)?;
        Ok(match which {
            Which::DeadLetter => json!({ "queueUrls": [self.url] }),
            Which::Main => json!({ "queueUrls": [] }),
        })
    }

    fn send_message(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let body = string(request, "MessageBody")?
            .ok_or_else(|| SqsError::missing_parameter("MessageBody"))?;
        if let Some(problem) = body_problem(body) {
            return Err(problem);
        }
        let delay = integer(request, "DelaySeconds", 0, MAX_DELAY_SECONDS)?;
        let (id, md5) = self.send_to(which, body.to_string(), seconds(delay).unwrap_or_default());
        Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5 }))
    }

    fn send_message_batch(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let entries = batch_entries(request, "SendMessageBatchRequestEntry")?;
        let total: usize = entries
            .iter()
            .map(|e| e["MessageBody"].as_str().map_or(0, str::len))
            .sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(SqsError::batch(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                &format!(
                    "Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes. You have sent {total} bytes."
                ),
            ));
        }
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for entry in &entries {
            let checked = string(entry, "MessageBody")
                .and_then(|b| b.ok_or_else(|| SqsError::missing_parameter("MessageBody")))
                .and_then(|body| match body_problem(body) {
                    Some(problem) => Err(problem),
                    None => Ok(body),
                })
                .and_then(|body| Ok((body, integer(entry, "DelaySeconds", 0, MAX_DELAY_SECONDS)?)));
            match checked {
                Ok((body, delay)) => {
                    let (id, md5) =
                        self.send_to(which, body.to_string(), seconds(delay).unwrap_or_default());
                    successful.push(
                        json!({ "Id": entry["Id"], "MessageId": id, "MD5OfMessageBody": md5 }),
                    );
                }
                Err(error) => failed.push(failed_entry(&entry["Id"], error)),
            }
        }
        Ok(json!({ "Successful": successful, "Failed": failed }))
    }

    async fn receive_message(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let max = integer(request, "MaxNumberOfMessages", 1, MAX_RECEIVE)?.unwrap_or(1);
        let visibility = seconds(integer(
            request,
            "VisibilityTimeout",
            0,
            MAX_VISIBILITY_SECONDS,
        )?);
        let wait =
            seconds(integer(request, "WaitTimeSeconds", 0, MAX_WAIT_SECONDS)?).unwrap_or_default();
        if string(request, "ReceiveRequestAttemptId")?.is_some() {
            return Err(SqsError::invalid_parameter(
                "The request include parameter that is not valid for this queue type".into(),
            ));
        }
        let mut wanted = string_list(request, "AttributeNames")?;
        wanted.extend(string_list(request, "MessageSystemAttributeNames")?);
        let all = wanted.iter().any(|n| n == "All");
        let wants = |name: &str| all || wanted.iter().any(|n| n == name);

        let max = max.unsigned_abs() as usize;
        let deadline = tokio::time::Instant::now() + wait;
        let received = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let received = self.receive_from(which, max, visibility);
            let now = tokio::time::Instant::now();
            if !received.is_empty() || now >= deadline {
                break received;
            }
            let remaining = deadline - now;
            let nap = self
                .next_visible_in(which)
                .map_or(remaining, |d| d.min(remaining))
                .max(Duration::from_millis(1));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(nap) => {}
            }
        };
        if received.is_empty() {
            return Ok(json!({}));
        }
        let messages: Vec<Value> = received
            .into_iter()
            .map(|m| {
                let mut attributes = Map::new();
                let mut put = |name: &str, value: String| {
                    if wants(name) {
                        attributes.insert(name.to_string(), Value::String(value));
                    }
                };
                put("SenderId", ACCOUNT.to_string());
                put("SentTimestamp", m.sent_at_ms.to_string());
                put("ApproximateReceiveCount", m.receive_count.to_string());
                put(
                    "ApproximateFirstReceiveTimestamp",
                    m.first_received_ms.to_string(),
                );
                if let Some(source) = m.source_arn {
                    put("DeadLetterQueueSourceArn", source);
                }
                let mut message = json!({
                    "MessageId": m.id,
                    "ReceiptHandle": m.receipt,
                    "MD5OfBody": m.md5,
                    "Body": m.body,
                });
                if !attributes.is_empty() {
                    message["Attributes"] = Value::Object(attributes);
                }
                message
            })
            .collect();
        Ok(json!({ "Messages": messages }))
    }

    fn delete_message(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let receipt = required(request, "ReceiptHandle")?;
        self.delete_from(which, receipt)
            .map_err(|()| SqsError::receipt_handle_is_invalid(receipt))?;
        Ok(json!({}))
    }

    fn delete_message_batch(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for entry in batch_entries(request, "DeleteMessageBatchRequestEntry")? {
            let receipt = entry["ReceiptHandle"].as_str().unwrap_or_default();
            match self.delete_from(which, receipt) {
                Ok(_) => successful.push(json!({ "Id": entry["Id"] })),
                Err(()) => failed.push(failed_entry(
                    &entry["Id"],
                    SqsError::receipt_handle_is_invalid(receipt),
                )),
            }
        }
        Ok(json!({ "Successful": successful, "Failed": failed }))
    }

    fn change_message_visibility(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        let receipt = required(request, "ReceiptHandle")?;
        let timeout = integer(request, "VisibilityTimeout", 0, MAX_VISIBILITY_SECONDS)?
            .ok_or_else(|| SqsError::missing_parameter("VisibilityTimeout"))?;
        self.change_visibility(which, receipt, Duration::from_secs(timeout.unsigned_abs()))
            .map_err(|in_flight_unknown| {
                if in_flight_unknown {
                    SqsError::new(
                        "MessageNotInflight",
                        "AWS.SimpleQueueService.MessageNotInflight",
                        400,
                        "The message referred to isn't in flight.".into(),
                    )
                } else {
                    SqsError::receipt_handle_is_invalid(receipt)
                }
            })?;
        Ok(json!({}))
    }

    fn purge_queue(&self, request: &Value) -> Reply {
        let which = self.queue_of(request)?;
        if !self.purge(which) {
            return Err(SqsError::new(
                "PurgeQueueInProgress",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                403,
                format!(
                    "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                    self.name_of(which)
                ),
            ));
        }
        Ok(json!({}))
    }

    async fn serve(&self, action: &str, body: &str) -> Reply {
        let request: Value = if body.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(body)
                .map_err(|e| SqsError::serialization(format!("the body is not JSON: {e}")))?
        };
        if !request.is_object() {
            return Err(SqsError::serialization(
                "the body is not a JSON object".into(),
            ));
        }
        match action {
            "ListQueues" => self.list_queues(&request),
            "GetQueueUrl" => self.get_queue_url(&request),
            "GetQueueAttributes" => self.get_queue_attributes(&request),
            "ListDeadLetterSourceQueues" => self.list_dead_letter_source_queues(&request),
            "SendMessage" => self.send_message(&request),
            "SendMessageBatch" => self.send_message_batch(&request),
            "ReceiveMessage" => self.receive_message(&request).await,
            "DeleteMessage" => self.delete_message(&request),
            "DeleteMessageBatch" => self.delete_message_batch(&request),
            "ChangeMessageVisibility" => self.change_message_visibility(&request),
            "PurgeQueue" => self.purge_queue(&request),
            other if NOT_EMULATED.contains(&other) => Err(SqsError::new(
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                400,
                format!("{other} is not emulated locally."),
            )),
            other => Err(SqsError::new(
                "InvalidAction",
                "InvalidAction",
                400,
                format!("The action {other} is not valid for this endpoint."),
            )),
        }
    }
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
    let action = target.strip_prefix("AmazonSQS.").unwrap_or(target);
    match queue.serve(action, &body).await {
        Ok(reply) => (
            [
                ("content-type", CONTENT_TYPE.to_string()),
                ("x-amzn-requestid", new_id()),
            ],
            reply.to_string(),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

/// The SQS endpoint of the queue and its dead-letter queue.
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
                .next_visible_in(Which::Main)
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
