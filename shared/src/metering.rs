//! Store metering for benchmarks: what each action costs in DynamoDB calls.
//!
//! A [`Meter`] is an HTTP proxy on loopback between a DynamoDB client (an SDK client
//! in this process, or a function's process given its endpoint) and the embedded
//! store. It adds `"ReturnConsumedCapacity": "INDEXES"` to every item operation, so the
//! store reports the capacity units it charged the way DynamoDB counts them (secondary
//! index writes included), and records each call: its operation (`X-Amz-Target`), when
//! it started and ended, and its read and write units. The code under measurement is
//! unchanged: it never asks for capacity itself, and the answer it parses only gains a
//! field the SDK already models.
//!
//! A proxy rather than an SDK interceptor, so that a function's release binary, run as
//! its own process, is metered exactly like a client of this process.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One call the store answered.
#[derive(Debug, Clone)]
pub struct StoreCall {
    /// The operation, from `X-Amz-Target` (`UpdateItem`, `TransactWriteItems`, ...).
    pub operation: String,
    /// When the request reached the proxy.
    pub started: Instant,
    /// When the store's whole answer had come back.
    pub ended: Instant,
    pub read_units: f64,
    pub write_units: f64,
    /// The error type of a refused call (`ConditionalCheckFailedException`, ...).
    pub error: Option<String>,
}

/// Operations whose units are read units.
const READS: &[&str] = &[
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];
/// Operations whose units are write units.
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];
/// Single-item writes that DynamoDB charges even when their condition fails.
const CONDITIONAL_WRITES: &[&str] = &["PutItem", "UpdateItem", "DeleteItem"];

/// The sum of the `CapacityUnits` of a `ConsumedCapacity` (one object, or one per
/// table for batches and transactions). Index units are part of each total.
fn capacity_units(consumed: &serde_json::Value) -> f64 {
    let one = |c: &serde_json::Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    match consumed {
        serde_json::Value::Array(tables) => tables.iter().map(one).sum(),
        serde_json::Value::Object(_) => one(consumed),
        _ => 0.0,
    }
}

type Calls = Arc<Mutex<Vec<StoreCall>>>;

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    calls: Calls,
}

fn operation_of(headers: &HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("?")
        .to_string()
}

/// Asks for capacity with index detail on item operations; anything else unchanged.
fn with_capacity_requested(operation: &str, body: Bytes) -> Bytes {
    if !READS.contains(&operation) && !WRITES.contains(&operation) {
        return body;
    }
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(&body) else {
        return body;
    };
    fields.insert("ReturnConsumedCapacity".into(), "INDEXES".into());
    serde_json::to_vec(&fields).map_or(body, Bytes::from)
}

async fn forward(State(proxy): State<Arc<Proxy>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let operation = operation_of(&headers);
    let body = with_capacity_requested(&operation, body);
    let mut request = proxy.client.post(&proxy.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut answer_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            answer_headers.insert(name, value.clone());
        }
    }
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let ended = Instant::now();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let units = capacity_units(&json["ConsumedCapacity"]);
    let error = (!status.is_success()).then(|| {
        json["__type"]
            .as_str()
            .and_then(|t| t.rsplit('#').next())
            .unwrap_or("?")
            .to_string()
    });
    // DynamoDB charges a failed condition on a single-item write (at least one unit,
    // more for a large existing item); the error carries no ConsumedCapacity.
    let units = if error.as_deref() == Some("ConditionalCheckFailedException")
        && CONDITIONAL_WRITES.contains(&operation.as_str())
    {
        1.0
    } else {
        units
    };
    let (read_units, write_units) = if WRITES.contains(&operation.as_str()) {
        (0.0, units)
    } else {
        (units, 0.0)
    };
    proxy
        .calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(StoreCall {
            operation,
            started,
            ended,
            read_units,
            write_units,
            error,
        });
    (status, answer_headers, bytes).into_response()
}

/// A metering proxy in front of a DynamoDB endpoint; stops when dropped.
pub struct Meter {
    /// Where clients send their DynamoDB requests instead of the store's endpoint.
    pub endpoint: String,
    calls: Calls,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Meter {
    /// A proxy on a random loopback port forwarding to `upstream` (an `http://` URL).
    pub async fn start(upstream: &str) -> Self {
        let calls = Calls::default();
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_string(),
            client: reqwest::Client::new(),
            calls: calls.clone(),
        });
        let app = axum::Router::new()
            .fallback(axum::routing::post(forward))
            .with_state(proxy);
        let (endpoint, stop) = crate::testing::serve_on_loopback(app).await;
        Self {
            endpoint,
            calls,
            stop: Some(stop),
        }
    }

    /// A DynamoDB client whose calls go through this meter.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(crate::embedded::dynamo_config(&self.endpoint))
    }

    /// The calls recorded since the last `take`, in the order they ended; clears them.
    pub fn take(&self) -> Vec<StoreCall> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How many round trips to the store `calls` take one after another: calls whose
/// time spans overlap were in flight together and count once.
pub fn sequential_round_trips(calls: &[StoreCall]) -> usize {
    let mut spans: Vec<(Instant, Instant)> = calls.iter().map(|c| (c.started, c.ended)).collect();
    spans.sort();
    let mut round_trips = 0;
    let mut busy_until: Option<Instant> = None;
    for (started, ended) in spans {
        match busy_until {
            Some(until) if started < until => busy_until = Some(until.max(ended)),
            _ => {
                round_trips += 1;
                busy_until = Some(ended);
            }
        }
    }
    round_trips
}

/// What a list of calls adds up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub calls: usize,
    pub round_trips: usize,
    pub read_units: f64,
    pub write_units: f64,
}

impl Usage {
    pub fn of(calls: &[StoreCall]) -> Self {
        Self {
            calls: calls.len(),
            round_trips: sequential_round_trips(calls),
            read_units: calls.iter().map(|c| c.read_units).sum(),
            write_units: calls.iter().map(|c| c.write_units).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestEnv;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[tokio::test]
    async fn units_are_the_ones_dynamodb_charges() {
        let env = TestEnv::start().await;
        let meter = Meter::start(&env.dynamo.endpoint).await;
        let client = meter.client();
        let table = crate::testing::TEST_TABLE;
        // 1.5 KB, in the table and in GSI1: 2 units for the table, 2 for the index.
        client
            .put_item()
            .table_name(table)
            .item("PK", s("A"))
            .item("SK", s("1"))
            .item("GSI1PK", s("G"))
            .item("GSI1SK", s("1"))
            .item("text", s(&"x".repeat(1500)))
            .send()
            .await
            .unwrap();
        let put = meter.take();
        assert_eq!(put.len(), 1);
        assert_eq!(put[0].operation, "PutItem");
        assert_eq!((put[0].read_units, put[0].write_units), (0.0, 4.0));

        // Eventually consistent reads: half a unit each.
        for _ in 0..3 {
            client
                .get_item()
                .table_name(table)
                .key("PK", s("A"))
                .key("SK", s("1"))
                .send()
                .await
                .unwrap();
        }
        let usage = Usage::of(&meter.take());
        assert_eq!(
            usage,
            Usage {
                calls: 3,
                round_trips: 3,
                read_units: 1.5,
                write_units: 0.0
            }
        );

        // A failed condition is charged, and recorded as refused.
        let refused = client
            .put_item()
            .table_name(table)
            .item("PK", s("A"))
            .item("SK", s("1"))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        assert!(refused.is_err());
        let calls = meter.take();
        assert_eq!(
            calls[0].error.as_deref(),
            Some("ConditionalCheckFailedException")
        );
        assert_eq!(calls[0].write_units, 1.0);
    }

    #[test]
    fn calls_in_flight_together_are_one_round_trip() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let call = |from: u64, to: u64| StoreCall {
            operation: "GetItem".into(),
            started: ms(from),
            ended: ms(to),
            read_units: 0.5,
            write_units: 0.0,
            error: None,
        };
        // 0-2 and 1-3 overlap, 3-4 starts as the pair ends, 5-9 holds 6-7.
        let calls = [call(5, 9), call(0, 2), call(3, 4), call(1, 3), call(6, 7)];
        assert_eq!(sequential_round_trips(&calls), 3);
        assert_eq!(sequential_round_trips(&[]), 0);
    }
}
