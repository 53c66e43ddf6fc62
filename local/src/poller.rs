//! Follows the table's change stream and invokes `broadcast` with DynamoDB Streams
//! events, in order, like an event source mapping: batches of up to 100 records,
//! partial batch failures retried from the first failed record a bounded number of
//! times, then skipped with an error log (the on-failure destination's job on AWS).
//!
//! It reads again as soon as a function that may have written returns (see
//! [`Invoker::wrote`]), right after a batch, and otherwise every
//! [`IDLE_POLL_INTERVAL`] for writes that bypass the functions (the TTL sweep, a
//! client of the DynamoDB endpoint); never twice within [`MIN_POLL_GAP`].

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use livestream::change_stream::ChangeStreamReader;
use tokio::sync::watch;

use crate::invoker::Invoker;

/// GetRecords' maximum: after a burst of writes (a connect storm) the broadcaster gets
/// few large batches, and posts each viewer once per batch, not once per 100 records.
pub const BATCH_SIZE: i32 = 1000;
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(150);
/// The shortest time from one read to the next. The writes of a burst that land within
/// it are read and broadcast as one batch, so the store (one thread for the whole
/// stack) serves a read and a connection lookup per gap, not per write.
pub const MIN_POLL_GAP: Duration = Duration::from_millis(10);
const MAX_RETRIES: u32 = 3;

/// Runs until `shutdown` turns true.
pub async fn run(
    mut reader: ChangeStreamReader,
    invoker: Arc<Invoker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let read_at = tokio::time::Instant::now();
        let records = match reader.next_records(BATCH_SIZE).await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "reading the change stream failed");
                Vec::new()
            }
        };
        if records.is_empty() {
            tokio::select! {
                _ = invoker.wrote() => {}
                _ = tokio::time::sleep(IDLE_POLL_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        } else {
            deliver(&invoker, records).await;
            if *shutdown.borrow() {
                return;
            }
        }
        tokio::time::sleep_until(read_at + MIN_POLL_GAP).await;
    }
}

async fn deliver(invoker: &Invoker, mut records: Vec<EventRecord>) {
    let mut attempts = 0;
    while !records.is_empty() {
        let started = std::time::Instant::now();
        let mut event = Event::default();
        event.records = records.clone();
        let response = invoker.broadcast(event).await;
        tracing::info!(
            route = "dynamodb-stream",
            records = records.len(),
            failures = response.batch_item_failures.len(),
            latency_ms = started.elapsed().as_millis() as u64,
            function = "broadcast",
            "stream batch"
        );
        let Some(failed) = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .next()
        else {
            return;
        };
        attempts += 1;
        let from = records
            .iter()
            .position(|r| r.change.sequence_number.as_deref() == Some(failed.as_str()))
            .unwrap_or(0);
        if attempts > MAX_RETRIES {
            tracing::error!(sequence = %failed, skipped = records.len() - from, "giving up on records after retries");
            return;
        }
        records.drain(..from);
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
    }
}
