//! The fan-out tier: a stream with more connections than one invocation should post
//! to is split into pages on an SQS queue; `fan-out` workers post each page with high
//! concurrency. A page is self-contained (the frames and the connection ids), so a
//! worker never reads the table except to prune connections that are gone.
//!
//! Retries do not repeat a frame to a connection that got it: a worker puts the
//! connections whose posts failed back on the queue as a smaller page (with a delay).
//! It reports a message as failed (`ReportBatchItemFailures`: SQS delivers it again,
//! and moves it to the dead-letter queue after a few receives) when the page cannot be
//! read, and when its retry page cannot be queued; only in that last case may some
//! connections get a frame twice, which clients drop by its `sequence`.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};

use crate::BroadcastState;
use crate::delivery::{Group, post_all, prune};

/// Posts in flight at once per page in a fan-out worker.
pub const FAN_OUT_CONCURRENT_POSTS: usize = 128;
/// Deliveries of a page (the first one included) before its failed connections are
/// given up on; those clients catch up by sequence number when they reconnect.
pub const PAGE_ATTEMPTS: u32 = 3;
/// SQS's message size limit (also the limit of one SendMessageBatch request).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Room for the page's JSON around its frames and ids.
const PAGE_OVERHEAD_BYTES: usize = 1024;
/// SendMessageBatch's entry limit.
const MAX_BATCH_ENTRIES: usize = 10;

/// Where the broadcaster puts pages, and how large streams are split.
#[derive(Debug, Clone)]
pub struct FanOut {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Streams with more connections than this go through the queue.
    pub threshold: usize,
    /// Connections per page (fewer when the frames are large).
    pub page_size: usize,
}

impl FanOut {
    pub const DEFAULT_THRESHOLD: usize = 1000;
    pub const DEFAULT_PAGE_SIZE: usize = 500;

    /// From `FANOUT_QUEUE_URL` (none: every stream is posted directly),
    /// `FANOUT_THRESHOLD` and `FANOUT_PAGE_SIZE`.
    pub async fn from_env() -> Result<Option<Self>, String> {
        let Ok(queue_url) = std::env::var("FANOUT_QUEUE_URL") else {
            return Ok(None);
        };
        let number = |name: &str, default: usize| -> Result<usize, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number, not {v:?}")),
                Err(_) => Ok(default),
            }
        };
        let config = aws_config::load_from_env().await;
        Ok(Some(Self {
            client: aws_sdk_sqs::Client::new(&config),
            queue_url,
            threshold: number("FANOUT_THRESHOLD", Self::DEFAULT_THRESHOLD)?,
            page_size: number("FANOUT_PAGE_SIZE", Self::DEFAULT_PAGE_SIZE)?.max(1),
        }))
    }

    /// A queue on this machine (the local stack's emulation, tests): fixed region,
    /// dummy credentials.
    pub fn local(endpoint: &str, queue_url: &str, threshold: usize, page_size: usize) -> Self {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "local"))
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(conf),
            queue_url: queue_url.to_string(),
            threshold,
            page_size: page_size.max(1),
        }
    }

    /// Splits groups into pages that fit a message. A group whose frames alone do not
    /// fit is returned in the second list, to be posted directly.
    pub fn paginate(&self, stream_id: &str, groups: Vec<Group>) -> (Vec<Page>, Vec<Group>) {
        let mut pages = Vec::new();
        let mut direct = Vec::new();
        for group in groups {
            let frame_bytes: usize = group.frames.iter().map(|f| f.len() * 2 + 3).sum();
            let room = MAX_MESSAGE_BYTES.saturating_sub(frame_bytes + PAGE_OVERHEAD_BYTES);
            let widest = group
                .connection_ids
                .iter()
                .map(|id| id.len() + 3)
                .max()
                .unwrap_or(1);
            let per_page = (room / widest).min(self.page_size);
            if per_page == 0 {
                direct.push(group);
                continue;
            }
            for ids in group.connection_ids.chunks(per_page) {
                pages.push(Page {
                    stream_id: stream_id.to_string(),
                    frames: group.frames.clone(),
                    connection_ids: ids.to_vec(),
                    attempt: 1,
                });
            }
        }
        (pages, direct)
    }

    /// Puts pages on the queue (`delay_seconds` before they are delivered); returns
    /// the pages SQS did not take.
    pub async fn enqueue(&self, pages: Vec<Page>, delay_seconds: i32) -> Vec<Page> {
        let mut refused = Vec::new();
        let mut batch: Vec<(String, Page)> = Vec::new();
        let mut batch_bytes = 0;
        for page in pages {
            let body = serde_json::to_string(&page).expect("a page serializes");
            if batch.len() == MAX_BATCH_ENTRIES || batch_bytes + body.len() > MAX_MESSAGE_BYTES {
                refused.extend(
                    self.send_batch(std::mem::take(&mut batch), delay_seconds)
                        .await,
                );
                batch_bytes = 0;
            }
            batch_bytes += body.len();
            batch.push((body, page));
        }
        if !batch.is_empty() {
            refused.extend(self.send_batch(batch, delay_seconds).await);
        }
        refused
    }

    async fn send_batch(&self, batch: Vec<(String, Page)>, delay_seconds: i32) -> Vec<Page> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, (body, _))| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay_seconds)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(out) => {
                let failed: Vec<usize> = out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect();
                for f in out.failed() {
                    tracing::error!(code = f.code(), message = ?f.message(), "page not queued");
                }
                batch
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| failed.contains(i))
                    .map(|(_, (_, page))| page)
                    .collect()
            }
            Err(err) => {
                tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(&err), "pages not queued");
                batch.into_iter().map(|(_, page)| page).collect()
            }
        }
    }
}

/// One message of the fan-out queue: frames for some connections of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub stream_id: String,
    pub frames: Vec<String>,
    pub connection_ids: Vec<String>,
    /// 1 for a page the broadcaster queued, one more for each retry page.
    pub attempt: u32,
}

/// How a batch of pages went, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanOutReport {
    pub pages: usize,
    pub posts: usize,
    pub pruned: usize,
    /// Connections put back on the queue for another attempt.
    pub requeued: usize,
    /// Connections given up on after [`PAGE_ATTEMPTS`].
    pub dropped: usize,
}

/// Handles one batch of fan-out queue messages.
pub async fn handle(state: &BroadcastState, event: SqsEvent) -> SqsBatchResponse {
    let (response, report) = handle_pages(state, event).await;
    tracing::info!(
        pages = report.pages,
        posts = report.posts,
        pruned = report.pruned,
        requeued = report.requeued,
        dropped = report.dropped,
        failed_messages = response.batch_item_failures.len(),
        "pages fanned out"
    );
    response
}

/// [`handle`], also returning what was done. Pages of a batch are posted concurrently.
pub async fn handle_pages(
    state: &BroadcastState,
    event: SqsEvent,
) -> (SqsBatchResponse, FanOutReport) {
    let mut pages = Vec::with_capacity(event.records.len());
    for message in &event.records {
        pages.push(Box::pin(handle_page(state, message)));
    }
    let outcomes = futures::future::join_all(pages).await;
    let mut report = FanOutReport::default();
    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.records.iter().zip(outcomes) {
        match outcome {
            Ok(page_report) => {
                report.pages += 1;
                report.posts += page_report.posts;
                report.pruned += page_report.pruned;
                report.requeued += page_report.requeued;
                report.dropped += page_report.dropped;
            }
            Err(reason) => {
                tracing::error!(message = ?message.message_id, %reason, "page failed");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
    }
    (response, report)
}

async fn handle_page(state: &BroadcastState, message: &SqsMessage) -> Result<FanOutReport, String> {
    let body = message.body.as_deref().ok_or("message without a body")?;
    let page: Page = serde_json::from_str(body).map_err(|e| format!("not a page: {e}"))?;
    let posted = post_all(
        &state.connections,
        &page.frames,
        &page.connection_ids,
        FAN_OUT_CONCURRENT_POSTS,
    )
    .await;
    let mut report = FanOutReport {
        posts: posted.posts,
        pruned: prune(&state.store, &posted.gone).await,
        ..FanOutReport::default()
    };
    if posted.failed.is_empty() {
        return Ok(report);
    }
    if page.attempt >= PAGE_ATTEMPTS {
        tracing::warn!(stream = %page.stream_id, connections = posted.failed.len(), "events not delivered after retries");
        report.dropped = posted.failed.len();
        return Ok(report);
    }
    let fan_out = state
        .fan_out
        .as_ref()
        .ok_or("connections failed and there is no queue to retry them on")?;
    report.requeued = posted.failed.len();
    // Backs off a second more per attempt: a throttled or failing endpoint recovers.
    let delay = i32::try_from(page.attempt).unwrap_or(i32::MAX);
    let retry = Page {
        connection_ids: posted.failed,
        attempt: page.attempt + 1,
        ..page
    };
    if fan_out.enqueue(vec![retry], delay).await.is_empty() {
        Ok(report)
    } else {
        Err("the retry page could not be queued".into())
    }
}
