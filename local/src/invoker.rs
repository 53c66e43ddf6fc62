//! How the local stack calls a function: in this process (default), or through
//! `cargo lambda watch`'s Invoke API, each function its own process.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::streams::DynamoDbEventResponse;
use livestream::AppState;
use livestream_broadcast::BroadcastState;
use livestream_ws::WsState;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An HTTP function's answer, as API Gateway turns it into a response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The functions' state, built once, for calling them in this process.
pub struct InProcess {
    pub api: AppState,
    pub ws: WsState,
    pub broadcast: BroadcastState,
}

pub enum Functions {
    InProcess(Box<InProcess>),
    /// `cargo lambda watch` listening at `base_url` (e.g. `http://127.0.0.1:9000`).
    CargoLambda {
        base_url: String,
        client: reqwest::Client,
    },
}

/// Calls functions, and tells the change-stream poller when one that may have written
/// to the table returned, so live events go out without waiting for the next poll.
///
/// Each HTTP and WebSocket function runs at most [`Invoker::with_concurrency`]
/// invocations at a time, as Lambda's reserved concurrency caps a function; the others
/// wait their turn. One machine has one store: without the cap, a burst of one function
/// (a class's 1,000 `$connect`s) queued every other call behind it there, and chat
/// stalled for seconds.
pub struct Invoker {
    functions: Functions,
    wrote: tokio::sync::Notify,
    concurrency: usize,
    instances: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

/// Invocations of one function at a time, by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

fn error_reply(status: u16, message: &str) -> HttpReply {
    HttpReply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({ "message": message })
            .to_string()
            .into_bytes(),
    }
}

impl Invoker {
    pub fn new(functions: Functions) -> Self {
        Self {
            functions,
            wrote: tokio::sync::Notify::new(),
            concurrency: DEFAULT_CONCURRENCY,
            instances: Default::default(),
        }
    }

    /// At most `concurrency` invocations of each HTTP and WebSocket function at once.
    pub fn with_concurrency(self, concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            ..self
        }
    }

    /// Waits for a free instance of `function`.
    async fn instance(&self, function: &str) -> OwnedSemaphorePermit {
        let instances = self
            .instances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(function.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone();
        instances
            .acquire_owned()
            .await
            .expect("instance semaphores are never closed")
    }

    /// Returns once a function that may have written returned since the last call
    /// (at once if one already did: the wake-up is kept until taken).
    pub fn wrote(&self) -> tokio::sync::futures::Notified<'_> {
        self.wrote.notified()
    }

    async fn invoke_remote(&self, function: &str, event: &Value) -> Result<Value, String> {
        let Functions::CargoLambda { base_url, client } = &self.functions else {
            unreachable!("remote invocation only in cargo-lambda mode")
        };
        let url = format!("{base_url}/2015-03-31/functions/{function}/invocations");
        let response = client
            .post(&url)
            .json(event)
            .send()
            .await
            .map_err(|e| format!("invoking {function} through cargo lambda: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "cargo lambda answered {} for {function}",
                response.status()
            ));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("{function} returned no JSON: {e}"))
    }

    /// Invokes an HTTP API function with a payload 2.0 event.
    pub async fn http(&self, function: &str, event: Value) -> HttpReply {
        let reads_only = event["requestContext"]["http"]["method"] == "GET";
        let instance = self.instance(function).await;
        let reply = self.call_http(function, event).await;
        drop(instance);
        if !reads_only {
            self.wrote.notify_one();
        }
        reply
    }

    async fn call_http(&self, function: &str, event: Value) -> HttpReply {
        match &self.functions {
            Functions::InProcess(functions) => {
                let request = match lambda_http::request::from_str(&event.to_string()) {
                    Ok(r) => r,
                    Err(e) => return error_reply(500, &format!("event did not parse: {e}")),
                };
                match livestream_api::invoke(function, &functions.api, request).await {
                    Some(response) => {
                        let status = response.status().as_u16();
                        let headers = response
                            .headers()
                            .iter()
                            .filter_map(|(k, v)| {
                                Some((k.to_string(), v.to_str().ok()?.to_string()))
                            })
                            .collect();
                        let body = match response.into_body() {
                            lambda_http::Body::Text(t) => t.into_bytes(),
                            lambda_http::Body::Binary(b) => b,
                            _ => Vec::new(),
                        };
                        HttpReply {
                            status,
                            headers,
                            body,
                        }
                    }
                    None => error_reply(500, &format!("no function named {function}")),
                }
            }
            Functions::CargoLambda { .. } => match self.invoke_remote(function, &event).await {
                Ok(reply) => http_reply_from_json(&reply),
                Err(e) => {
                    tracing::error!(error = %e, "invocation failed");
                    error_reply(502, "Internal Server Error")
                }
            },
        }
    }

    /// Invokes a WebSocket route's function; returns its status code.
    pub async fn websocket(&self, function: &str, event: Value) -> i64 {
        let instance = self.instance(function).await;
        let status = self.call_websocket(function, event).await;
        drop(instance);
        self.wrote.notify_one();
        status
    }

    async fn call_websocket(&self, function: &str, event: Value) -> i64 {
        match &self.functions {
            Functions::InProcess(functions) => {
                let event: ApiGatewayWebsocketProxyRequest = match serde_json::from_value(event) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "WebSocket event did not parse");
                        return 500;
                    }
                };
                livestream_ws::invoke(function, &functions.ws, event)
                    .await
                    .map_or(500, |r: ApiGatewayProxyResponse| r.status_code)
            }
            Functions::CargoLambda { .. } => match self.invoke_remote(function, &event).await {
                Ok(reply) => reply["statusCode"].as_i64().unwrap_or(200),
                Err(e) => {
                    tracing::error!(error = %e, "invocation failed");
                    500
                }
            },
        }
    }

    /// Invokes the presence sweeper, as its schedule does on AWS.
    pub async fn sweep(&self) {
        match &self.functions {
            Functions::InProcess(functions) => {
                let state = &functions.broadcast;
                match Box::pin(livestream::service::sweep::run(
                    &state.store,
                    &state.connections,
                    state.video.as_ref(),
                    livestream::model::now(),
                ))
                .await
                {
                    Ok(report) if report == Default::default() => {}
                    Ok(report) => tracing::info!(
                        http_presences_ended = report.http_presences_ended,
                        connections_gone = report.connections_gone,
                        classes_ended = report.classes_ended,
                        channels_deleted = report.channels_deleted,
                        "presence sweep"
                    ),
                    Err(e) => tracing::warn!(error = %e, "presence sweep failed"),
                }
            }
            Functions::CargoLambda { .. } => {
                let event =
                    serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" });
                if let Err(e) = self.invoke_remote("sweep-presence", &event).await {
                    tracing::warn!(error = %e, "presence sweep invocation failed");
                }
            }
        }
    }

    /// Invokes the video events function with an EventBridge event, as the rule on
    /// `aws.ivs` does on AWS; `Err` when it failed (EventBridge would retry).
    pub async fn video_event(&self, event: Value) -> Result<(), String> {
        let result = match &self.functions {
            Functions::InProcess(functions) => {
                let event = serde_json::from_value(event)
                    .map_err(|e| format!("the video event did not parse: {e}"))?;
                livestream_broadcast::handle_video_event(&functions.broadcast, event)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Functions::CargoLambda { .. } => {
                self.invoke_remote("video-events", &event).await.map(|_| ())
            }
        };
        self.wrote.notify_one();
        result
    }

    /// Invokes the broadcaster with a DynamoDB Streams event.
    pub async fn broadcast(&self, event: Event) -> DynamoDbEventResponse {
        match &self.functions {
            Functions::InProcess(functions) => {
                livestream_broadcast::handle(&functions.broadcast, event).await
            }
            Functions::CargoLambda { .. } => {
                let first = event
                    .records
                    .first()
                    .and_then(|r| r.change.sequence_number.clone());
                let json = serde_json::to_value(&event).unwrap_or_default();
                match self.invoke_remote("broadcast", &json).await {
                    Ok(reply) => serde_json::from_value(reply).unwrap_or_default(),
                    Err(e) => {
                        tracing::error!(error = %e, "broadcast invocation failed");
                        // The whole batch failed: retry it from its first record.
                        let mut response = DynamoDbEventResponse::default();
                        let mut failure =
                            aws_lambda_events::streams::DynamoDbBatchItemFailure::default();
                        failure.item_identifier = first;
                        response.batch_item_failures.push(failure);
                        response
                    }
                }
            }
        }
    }

    /// Invokes a fan-out worker with an SQS event.
    pub async fn fan_out(&self, event: SqsEvent) -> Result<SqsBatchResponse, String> {
        match &self.functions {
            Functions::InProcess(functions) => {
                Ok(livestream_broadcast::fanout::handle(&functions.broadcast, event).await)
            }
            Functions::CargoLambda { .. } => {
                let json = serde_json::to_value(&event).map_err(|e| e.to_string())?;
                let reply = self.invoke_remote("fan-out", &json).await?;
                serde_json::from_value(reply).map_err(|e| format!("fan-out answered: {e}"))
            }
        }
    }
}

/// An API Gateway payload 2.0 response (`statusCode`, `headers`, `body`,
/// `isBase64Encoded`, `cookies`) as the HTTP response it stands for.
pub fn http_reply_from_json(reply: &Value) -> HttpReply {
    use base64::Engine;
    let status = reply["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let mut headers: Vec<(String, String)> = reply["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    for cookie in reply["cookies"].as_array().into_iter().flatten() {
        if let Some(c) = cookie.as_str() {
            headers.push(("set-cookie".into(), c.to_string()));
        }
    }
    let body = reply["body"].as_str().unwrap_or_default();
    let body = if reply["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    HttpReply {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn payload_v2_responses_become_http_replies() {
        let reply = http_reply_from_json(&serde_json::json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json"},
            "body": "eyJhIjoxfQ==",
            "isBase64Encoded": true,
            "cookies": ["a=b"]
        }));
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body, br#"{"a":1}"#);
        assert!(reply.headers.contains(&("set-cookie".into(), "a=b".into())));
    }

    /// Per function: invocations held now, and the most ever held at once.
    type Seen = Arc<std::sync::Mutex<HashMap<String, (usize, usize)>>>;

    /// A Lambda Invoke API on loopback that holds each invocation a while and notes
    /// how many it holds at once, per function.
    async fn invoke_api() -> (String, Seen) {
        use axum::extract::{Path, State};
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/2015-03-31/functions/{name}/invocations",
                axum::routing::post(
                    |State(seen): State<Seen>, Path(name): Path<String>| async move {
                        {
                            let mut seen = seen.lock().unwrap();
                            let (now, most) = seen.entry(name.clone()).or_default();
                            *now += 1;
                            *most = (*most).max(*now);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                        seen.lock().unwrap().get_mut(&name).unwrap().0 -= 1;
                        axum::Json(serde_json::json!({ "statusCode": 200, "body": "" }))
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_function_runs_at_most_its_concurrency_at_once() {
        let (base_url, seen) = invoke_api().await;
        let invoker = Invoker::new(Functions::CargoLambda {
            base_url,
            client: reqwest::Client::new(),
        })
        .with_concurrency(2);
        let event = |route: &str| {
            serde_json::json!({
                "requestContext": { "http": { "method": "POST" }, "routeKey": route },
            })
        };
        let calls = (0..12).map(|i| {
            let function = if i % 2 == 0 {
                "ws-connect"
            } else {
                "send-chat-message"
            };
            let invoker = &invoker;
            let event = event(function);
            async move {
                if function == "ws-connect" {
                    invoker.websocket(function, event).await;
                } else {
                    invoker.http(function, event).await;
                }
            }
        });
        futures::future::join_all(calls).await;
        let seen = seen.lock().unwrap();
        // Two at a time for each function, and the two functions side by side.
        assert_eq!(seen["ws-connect"], (0, 2));
        assert_eq!(seen["send-chat-message"], (0, 2));
    }
}
