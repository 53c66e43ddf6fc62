//! The fan-out tier's part of the template: the queue the broadcaster puts pages of
//! large streams on, its dead-letter queue, the `fan-out` function's event source
//! mapping and environment, and the queue permissions of the two functions.

use serde_json::{Map, Value, json};

use crate::{get_att, reference};

pub const FUNCTION: &str = "fan-out";
const QUEUE: &str = "FanOutQueue";
const DEAD_LETTER_QUEUE: &str = "FanOutDeadLetterQueue";
/// The worker's timeout; SQS hides a received page six times as long, as AWS advises
/// for an event source mapping, so a slow worker is not raced by a second delivery.
pub const TIMEOUT_S: u32 = 30;
/// Receives before a page moves to the dead-letter queue.
const MAX_RECEIVE_COUNT: u32 = 3;
/// Workers at once: each keeps 128 posts in flight, so 20 of them can exceed the
/// account's 10,000 posts/s; the cap keeps one class from starving the others.
const MAX_CONCURRENCY: u32 = 20;
/// Streams with more connections than this go through the queue, in pages of
/// `PAGE_SIZE` connections (see `docs/live-delivery-at-scale.md`).
const THRESHOLD: u32 = 1000;
const PAGE_SIZE: u32 = 500;
/// At most one frame per viewer per second, whatever the chat rate. Frames are over 90 %
/// of a class's cost from 500 students on; this window keeps that cost linear in the
/// class's size (docs/cost.md).
const DELIVERY_WINDOW_MS: u32 = 1000;

/// The two queues.
pub fn resources(resources: &mut Map<String, Value>) {
    resources.insert(
        QUEUE.into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Metadata": super::checkov_skips(&[SQS_MANAGED_ENCRYPTION]),
            "Properties": {
                "VisibilityTimeout": TIMEOUT_S * 6,
                // A live event an hour late is no use to anyone.
                "MessageRetentionPeriod": 3600,
                "SqsManagedSseEnabled": true,
                "RedrivePolicy": {
                    "deadLetterTargetArn": get_att(DEAD_LETTER_QUEUE, "Arn"),
                    "maxReceiveCount": MAX_RECEIVE_COUNT
                }
            }
        }),
    );
    resources.insert(
        DEAD_LETTER_QUEUE.into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Metadata": super::checkov_skips(&[SQS_MANAGED_ENCRYPTION]),
            "Properties": { "MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": true }
        }),
    );
}

/// checkov's CKV_AWS_27 looks for a KMS key and misses SQS-managed encryption.
const SQS_MANAGED_ENCRYPTION: (&str, &str) = (
    "CKV_AWS_27",
    "encrypted with SQS-managed keys (SqsManagedSseEnabled), which this check does not recognize; pages hold connection ids and event payloads already sent to clients",
);

/// The fan-out function's event source: one page per invocation, partial failures.
pub fn events(function: &str, events: &mut Map<String, Value>) {
    if function != FUNCTION {
        return;
    }
    events.insert(
        "Pages".into(),
        json!({
            "Type": "SQS",
            "Properties": {
                "Queue": get_att(QUEUE, "Arn"),
                "BatchSize": 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": { "MaximumConcurrency": MAX_CONCURRENCY }
            }
        }),
    );
}

/// The broadcaster puts pages on the queue; a worker puts retry pages back.
pub fn statements(function: &str) -> Vec<Value> {
    if function != "broadcast" && function != FUNCTION {
        return Vec::new();
    }
    vec![json!({
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": [get_att(QUEUE, "Arn")],
    })]
}

/// Where the queue is and how streams are split, for the two functions.
pub fn environment(function: &str) -> Option<Value> {
    if function != "broadcast" && function != FUNCTION {
        return None;
    }
    Some(json!({ "Variables": {
        "FANOUT_QUEUE_URL": reference(QUEUE),
        "FANOUT_THRESHOLD": THRESHOLD.to_string(),
        "FANOUT_PAGE_SIZE": PAGE_SIZE.to_string(),
        "DELIVERY_WINDOW_MS": DELIVERY_WINDOW_MS.to_string(),
    } }))
}

/// The dead-letter queue, for the operator.
pub fn outputs(outputs: &mut Map<String, Value>) {
    outputs.insert(
        "FanOutDeadLetterQueueUrl".into(),
        json!({
            "Description": "Pages of live events the fan-out workers gave up on",
            "Value": reference(DEAD_LETTER_QUEUE)
        }),
    );
}
