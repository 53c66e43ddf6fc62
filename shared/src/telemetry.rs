//! Logs and metrics shared by every binary.
//!
//! Logs: JSON lines on Lambda (CloudWatch parses them), compact text elsewhere; one
//! `request` line per HTTP request. Metrics: CloudWatch Embedded Metric Format (EMF)
//! documents written to stdout after each invocation, through `metrics` and
//! `metrics_cloudwatch_embedded`, only on Lambda (elsewhere no recorder is installed
//! and recording costs nothing). CloudWatch turns the documents into metrics in the
//! [`NAMESPACE`] namespace with no API call from the function.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use tracing_subscriber::EnvFilter;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Livestream";

/// dynoxide (the local and test DynamoDB) logs each error answer at WARN, including the
/// conditional-check failures that idempotent joins and concurrent writes expect.
const QUIET: &[&str] = &["dynoxide=error"];

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// The level comes from `RUST_LOG` (default `info`).
pub fn filter() -> EnvFilter {
    filter_from(std::env::var("RUST_LOG").ok().as_deref())
}

/// `spec` in `RUST_LOG` syntax; the expected noise in [`QUIET`] stays filtered whatever
/// it says.
pub fn filter_from(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for directive in QUIET {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    filter
}

/// Sets up logging and, on Lambda, the EMF metrics recorder. A second call (tests, an
/// embedding process) keeps the first set-up.
pub fn init() {
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false);
    let result = if on_lambda {
        builder.json().without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    drop(result);
    if on_lambda && COLLECTOR.get().is_none() {
        match metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .init()
        {
            Ok(collector) => {
                let _ = COLLECTOR.set(collector);
                describe_metrics();
            }
            Err(err) => tracing::warn!(error = %err, "metrics are off"),
        }
    }
}

fn describe_metrics() {
    describe_counter!(
        "Requests",
        Unit::Count,
        "requests by function and status class"
    );
    describe_histogram!("Latency", Unit::Milliseconds, "handler time per request");
    describe_counter!(
        "BroadcastEvents",
        Unit::Count,
        "client events built from change records"
    );
    describe_counter!(
        "BroadcastPosts",
        Unit::Count,
        "frames posted to @connections"
    );
    describe_counter!(
        "BroadcastPruned",
        Unit::Count,
        "connections deleted after 410 Gone"
    );
    describe_counter!(
        "BroadcastFailedPosts",
        Unit::Count,
        "posts that failed after retries"
    );
    describe_counter!(
        "BroadcastFailedRecords",
        Unit::Count,
        "records reported for retry"
    );
    describe_histogram!(
        "BroadcastBatchAge",
        Unit::Milliseconds,
        "from the oldest record's change to its delivery"
    );
    describe_counter!(
        DYNAMO_RETRIES,
        Unit::Count,
        "DynamoDB attempts beyond the first, by operation (the SDK retried)"
    );
    describe_counter!(
        DYNAMO_CONDITION_FAILED,
        Unit::Count,
        "writes whose condition did not hold (expected: idempotent joins, races)"
    );
    describe_counter!(
        DYNAMO_TRANSACTION_CANCELED,
        Unit::Count,
        "cancelled transactions, once per cancellation reason"
    );
    describe_counter!(
        DYNAMO_TRANSACTION_CONFLICTS,
        Unit::Count,
        "writes refused because a transaction was writing the same item"
    );
    describe_counter!(
        DYNAMO_THROTTLES,
        Unit::Count,
        "calls that stayed throttled after the SDK's retries"
    );
}

/// `DynamoRetries`, dimension `Operation`.
pub const DYNAMO_RETRIES: &str = "DynamoRetries";
/// `DynamoConditionFailed`: a normal outcome, counted, never logged as a warning.
pub const DYNAMO_CONDITION_FAILED: &str = "DynamoConditionFailed";
/// `DynamoTransactionCanceled`, dimension `Reason` (`ConditionalCheckFailed`,
/// `TransactionConflict`, `ThrottlingError`, ...).
pub const DYNAMO_TRANSACTION_CANCELED: &str = "DynamoTransactionCanceled";
/// `DynamoTransactionConflicts`: `TransactionConflictException` on a single write.
pub const DYNAMO_TRANSACTION_CONFLICTS: &str = "DynamoTransactionConflicts";
/// `DynamoThrottles`: throttling that outlasted the SDK's retries.
pub const DYNAMO_THROTTLES: &str = "DynamoThrottles";

/// How a DynamoDB call ended, when it is worth counting (see [`record_dynamo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamoOutcome<'a> {
    /// `ConditionalCheckFailedException`.
    ConditionFailed,
    /// `TransactionCanceledException`, with the reason of each action (`None` where the
    /// action was fine).
    TransactionCanceled(&'a [Option<String>]),
    /// `TransactionConflictException` (or `TransactionInProgressException`).
    TransactionConflict,
    /// Throttled: `ProvisionedThroughputExceededException`, `ThrottlingException`,
    /// `RequestLimitExceeded`.
    Throttled,
}

/// Counts one outcome of a DynamoDB call.
pub fn record_dynamo(outcome: DynamoOutcome<'_>) {
    match outcome {
        DynamoOutcome::ConditionFailed => counter!(DYNAMO_CONDITION_FAILED).increment(1),
        DynamoOutcome::TransactionCanceled(reasons) => {
            for reason in reasons.iter().flatten() {
                counter!(DYNAMO_TRANSACTION_CANCELED, "Reason" => reason.clone()).increment(1);
            }
        }
        DynamoOutcome::TransactionConflict => counter!(DYNAMO_TRANSACTION_CONFLICTS).increment(1),
        DynamoOutcome::Throttled => counter!(DYNAMO_THROTTLES).increment(1),
    }
}

/// Counts one retry of a DynamoDB operation (an attempt after the first).
pub fn record_dynamo_retry(operation: &str) {
    counter!(DYNAMO_RETRIES, "Operation" => operation.to_string()).increment(1);
}

/// Writes the metrics recorded since the last flush as EMF lines to stdout; called once
/// at the end of every invocation.
pub fn flush_metrics() {
    if let Some(collector) = COLLECTOR.get()
        && let Err(err) = collector.flush(std::io::stdout().lock())
    {
        tracing::warn!(error = %err, "writing metrics failed");
    }
}

tokio::task_local! {
    static CALLER: RefCell<Option<String>>;
}

/// Notes the authenticated user of the current request for its [`request`] log line.
/// Outside [`observe`] (tests, WebSocket events) it does nothing.
pub fn set_caller(user_id: &str) {
    let _ = CALLER.try_with(|caller| *caller.borrow_mut() = Some(user_id.to_string()));
}

/// `200` -> `2xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// What one HTTP request was, for its log line and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub function: String,
    pub route: String,
    pub request_id: String,
}

/// Runs one HTTP request's handler, then writes its one `request` log line (function,
/// route, status, latency, user id, request id), counts it by function and status
/// class, records its latency, and flushes the metrics.
pub async fn observe<F>(info: RequestInfo, handler: F) -> lambda_http::Response<lambda_http::Body>
where
    F: Future<Output = lambda_http::Response<lambda_http::Body>>,
{
    let started = std::time::Instant::now();
    let (response, caller) = CALLER
        .scope(RefCell::new(None), async {
            let response = handler.await;
            (response, CALLER.with(|c| c.borrow_mut().take()))
        })
        .await;
    let status = response.status().as_u16();
    record_request(&info, status, started.elapsed(), caller.as_deref());
    flush_metrics();
    response
}

/// The log line and metrics of one request (see [`observe`]).
pub fn record_request(info: &RequestInfo, status: u16, latency: Duration, user_id: Option<&str>) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(
        function = %info.function,
        route = %info.route,
        status,
        latency_ms,
        user_id = user_id.unwrap_or("-"),
        request_id = %info.request_id,
        "request"
    );
    let function = info.function.clone();
    counter!("Requests", "Function" => function.clone(), "StatusClass" => status_class(status))
        .increment(1);
    histogram!("Latency", "Function" => function).record(latency_ms);
}

/// What one broadcast batch did, as metrics (the broadcaster logs the same line).
pub fn record_batch(
    events: usize,
    posts: usize,
    pruned: usize,
    failed_posts: usize,
    failed_records: usize,
    age: Option<Duration>,
) {
    let count = |n: usize| n as u64;
    counter!("BroadcastEvents").increment(count(events));
    counter!("BroadcastPosts").increment(count(posts));
    counter!("BroadcastPruned").increment(count(pruned));
    counter!("BroadcastFailedPosts").increment(count(failed_posts));
    counter!("BroadcastFailedRecords").increment(count(failed_records));
    if let Some(age) = age {
        histogram!("BroadcastBatchAge").record(age.as_secs_f64() * 1000.0);
    }
}

/// A recorder that keeps counters in memory, for tests that check what is counted.
#[cfg(test)]
pub(crate) mod counted {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// Counter totals by `name{label=value,...}`.
    #[derive(Default, Clone)]
    pub struct Counted(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

    struct Total(Arc<AtomicU64>);

    impl metrics::CounterFn for Total {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    impl Counted {
        /// The total of `name` with exactly these labels (in their order).
        pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
            let key = Self::name(name, labels.iter().map(|(k, v)| (*k, *v)));
            self.0
                .lock()
                .unwrap()
                .get(&key)
                .map_or(0, |n| n.load(Ordering::Relaxed))
        }

        fn name<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
            let labels: Vec<String> = labels.map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name}{{{}}}", labels.join(","))
        }

        /// Runs `f` with this recorder for the current thread.
        pub fn during<T>(&self, f: impl FnOnce() -> T) -> T {
            metrics::with_local_recorder(self, f)
        }

        /// Runs `future` to completion on a runtime of this thread, with this recorder.
        pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            self.during(|| runtime.block_on(future))
        }
    }

    impl Recorder for Counted {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let name = Self::name(key.name(), key.labels().map(|l| (l.key(), l.value())));
            let total = self.0.lock().unwrap().entry(name).or_default().clone();
            Counter::from_arc(Arc::new(Total(total)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamo_outcomes_are_counted_by_kind_and_reason() {
        let counted = counted::Counted::default();
        counted.during(|| {
            record_dynamo(DynamoOutcome::ConditionFailed);
            record_dynamo(DynamoOutcome::ConditionFailed);
            record_dynamo(DynamoOutcome::TransactionCanceled(&[
                None,
                Some("ConditionalCheckFailed".into()),
                Some("TransactionConflict".into()),
            ]));
            record_dynamo(DynamoOutcome::TransactionConflict);
            record_dynamo(DynamoOutcome::Throttled);
            record_dynamo_retry("PutItem");
        });
        assert_eq!(counted.get(DYNAMO_CONDITION_FAILED, &[]), 2);
        let canceled = |reason| counted.get(DYNAMO_TRANSACTION_CANCELED, &[("Reason", reason)]);
        assert_eq!(canceled("ConditionalCheckFailed"), 1);
        assert_eq!(canceled("TransactionConflict"), 1);
        assert_eq!(canceled("None"), 0);
        assert_eq!(counted.get(DYNAMO_TRANSACTION_CONFLICTS, &[]), 1);
        assert_eq!(counted.get(DYNAMO_THROTTLES, &[]), 1);
        assert_eq!(counted.get(DYNAMO_RETRIES, &[("Operation", "PutItem")]), 1);
    }

    #[test]
    fn statuses_fall_in_their_class() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(409), "4xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn expected_conditional_check_noise_stays_quiet_even_at_warn() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter_from(Some("warn")))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "dynoxide::server", operation = "TransactWriteItems", status = 400, "error response");
            tracing::warn!(target: "livestream::store", "a real problem");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("TransactWriteItems"), "{text}");
        assert!(text.contains("a real problem"), "{text}");
    }

    #[tokio::test]
    async fn the_caller_is_noted_only_inside_a_request() {
        set_caller("outside");
        let info = RequestInfo {
            function: "get-stream".into(),
            route: "GET /api/livestream/{id}".into(),
            request_id: "r1".into(),
        };
        let response = observe(info, async {
            set_caller("student-1");
            assert_eq!(
                CALLER.with(|c| c.borrow().clone()).as_deref(),
                Some("student-1")
            );
            lambda_http::Response::builder()
                .status(204)
                .body(lambda_http::Body::Empty)
                .unwrap()
        })
        .await;
        assert_eq!(response.status(), 204);
        assert!(CALLER.try_with(|_| ()).is_err());
    }
}
