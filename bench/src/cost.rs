//! `-- cost`: what each action of a class costs, in the units AWS bills.
//!
//! Every action runs through the function that serves it on AWS: the release
//! `bootstrap`, started as Lambda starts it under the Runtime API emulator of
//! [`cold_start`](crate::cold_start), with `_HANDLER` naming the function. Its DynamoDB
//! endpoint is a [`Meter`] in front of the embedded store, which asks for
//! `ReturnConsumedCapacity=INDEXES` on each call and records it; its `@connections`
//! endpoint records the frames posted; its fan-out queue is the local stack's SQS
//! emulation. The class's setup (courses, streams, who is connected) is written through
//! this process's own store client, which the meter does not see.
//!
//! Per action, over `runs` warm invocations (a first one warms the instance up and is
//! not counted): the store calls and the round trips they take one after another, the
//! read and write units (means), the invocation's time (median, from handing the event
//! over to the answer, the proxy's hop included), the frames posted and the messages
//! put on the fan-out queue. docs/cost.md turns this table into dollars.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use livestream::apigw::{HttpRequestSpec, WebSocketEventSpec, http_event, websocket_event};
use livestream::auth::Role;
use livestream::metering::{Meter, StoreCall, Usage};
use livestream::testing::{RecordingManagementApi, TEST_SECRET, TEST_TABLE, TestEnv, token};
use serde_json::{Value, json};

use crate::cold_start::{self, Instance};

/// Connections of the stream whose batches the broadcaster posts itself.
const DIRECT_VIEWERS: usize = 200;
/// Connections of the stream whose batches go through the fan-out queue: over the
/// template's threshold (1,000), in pages of 500 (`infra/src/fanout.rs`).
const QUEUED_VIEWERS: usize = 1200;
const FANOUT_THRESHOLD: usize = 1000;
const FANOUT_PAGE_SIZE: usize = 500;
/// Watching students of the streams stopped in the second stop row.
const STOP_WATCHING: usize = 50;

/// One action's figures.
pub struct CostRow {
    pub action: String,
    pub function: &'static str,
    pub usage: Vec<Usage>,
    pub times: Vec<Duration>,
    pub frames: Vec<usize>,
    pub queued: Vec<u64>,
    /// The calls of the last run, in the order they started.
    pub calls: Vec<StoreCall>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// `a` when every run agrees, `a-b` when they vary.
fn range(values: impl Iterator<Item = usize>) -> String {
    let values: Vec<usize> = values.collect();
    let (lo, hi) = (
        values.iter().min().copied().unwrap_or(0),
        values.iter().max().copied().unwrap_or(0),
    );
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

impl CostRow {
    pub fn print_header() {
        println!(
            "| {:<44} | {:<19} | {:>5} | {:>11} | {:>6} | {:>6} | {:>9} | {:>6} | {:>9} |",
            "action",
            "function",
            "calls",
            "round trips",
            "RCU",
            "WCU",
            "Lambda ms",
            "frames",
            "SQS msgs"
        );
        println!(
            "|{:-<46}|{:-<21}|{:->7}|{:->13}|{:->8}|{:->8}|{:->11}|{:->8}|{:->11}|",
            "", "", "", "", "", "", "", "", ""
        );
    }

    pub fn print(&self) {
        let mut times = self.times.clone();
        let median = cold_start::median(&mut times);
        println!(
            "| {:<44} | {:<19} | {:>5} | {:>11} | {:>6.1} | {:>6.1} | {:>9.2} | {:>6} | {:>9} |",
            self.action,
            self.function,
            range(self.usage.iter().map(|u| u.calls)),
            range(self.usage.iter().map(|u| u.round_trips)),
            mean(self.usage.iter().map(|u| u.read_units)),
            mean(self.usage.iter().map(|u| u.write_units)),
            median.as_secs_f64() * 1000.0,
            range(self.frames.iter().copied()),
            range(self.queued.iter().map(|q| *q as usize)),
        );
    }
}

/// What every measured invocation shares: the meter, `@connections`, the queue.
struct Harness {
    env: TestEnv,
    meter: Meter,
    management: RecordingManagementApi,
    queue: Arc<local::sqs::LocalQueue>,
    bootstrap: std::path::PathBuf,
    base_env: Vec<(String, String)>,
    runs: usize,
}

/// Whether a function's answer says it did what was asked.
fn succeeded(function: &str, answer: &Result<Value, String>) -> Result<(), String> {
    let answer = answer.as_ref().map_err(Clone::clone)?;
    match function {
        "broadcast" | "fan-out" => {
            let failures = answer["batchItemFailures"].as_array().map_or(0, Vec::len);
            (failures == 0)
                .then_some(())
                .ok_or_else(|| format!("{failures} failed records: {answer}"))
        }
        _ => {
            let status = answer["statusCode"].as_u64().unwrap_or(0);
            (status < 300)
                .then_some(())
                .ok_or_else(|| format!("answered {status}: {}", answer["body"]))
        }
    }
}

impl Harness {
    async fn instance(&self, function: &str) -> Instance {
        let mut env = self.base_env.clone();
        env.push(("_HANDLER".into(), function.into()));
        Instance::start(Path::new(&self.bootstrap), &env).await
    }

    /// Runs `runs + 1` invocations of `function` with the events `make` builds (the
    /// first one unmeasured) and returns the row; `answers` gets every answer.
    async fn measure(
        &self,
        action: &str,
        function: &'static str,
        mut make: impl AsyncFnMut(usize) -> Value,
        mut answers: impl FnMut(&Value),
    ) -> CostRow {
        let mut instance = self.instance(function).await;
        let mut row = CostRow {
            action: action.into(),
            function,
            usage: Vec::new(),
            times: Vec::new(),
            frames: Vec::new(),
            queued: Vec::new(),
            calls: Vec::new(),
        };
        for run in 0..=self.runs {
            let event = make(run).await;
            self.meter.take();
            let (posts, sent) = (self.management.post_count(), self.queue.sent());
            let (took, answer) = instance.invoke(&event).await;
            if let Err(why) = succeeded(function, &answer) {
                panic!("{action}: {function} {why}");
            }
            let calls = self.meter.take();
            if let Ok(answer) = &answer {
                answers(answer);
            }
            if run == 0 {
                continue;
            }
            row.usage.push(Usage::of(&calls));
            row.calls = calls;
            row.times.push(took);
            row.frames.push(self.management.post_count() - posts);
            row.queued.push(self.queue.sent() - sent);
        }
        row
    }

    fn store(&self) -> &livestream::store::Store {
        self.env.store()
    }
}

fn http(
    method: &str,
    route: &str,
    path: &str,
    params: &[(&str, &str)],
    bearer: &str,
    body: Value,
) -> Value {
    let body = body.to_string();
    http_event(&HttpRequestSpec {
        method,
        route_path: route,
        path,
        path_parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: vec![
            ("authorization".into(), format!("Bearer {bearer}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: Some(&body),
        ..Default::default()
    })
}

fn ws(route_key: &str, connection_id: &str, query: &str, body: Option<&str>) -> Value {
    websocket_event(&WebSocketEventSpec {
        route_key,
        connection_id,
        connected_at: chrono::Utc::now().timestamp_millis(),
        query,
        body,
        ..Default::default()
    })
}

fn student(name: &str) -> String {
    token(name, Role::Student)
}

/// A chat message sent through the handler in this process (unmetered): what the
/// change stream then carries to the broadcaster.
async fn chat_in_process(env: &TestEnv, stream_id: &str, who: &str, text: &str) {
    let path = format!("/api/livestream/{stream_id}/chat");
    let body = json!({ "message": text }).to_string();
    let request = livestream::apigw::http_request(&HttpRequestSpec {
        method: "POST",
        route_path: "/api/livestream/{id}/chat",
        path: &path,
        path_parameters: vec![("id".into(), stream_id.into())],
        headers: vec![("authorization".into(), format!("Bearer {}", student(who)))],
        body: Some(&body),
        ..Default::default()
    });
    let response = livestream_api::invoke("send-chat-message", &env.state, request)
        .await
        .expect("the handler exists");
    assert_eq!(response.status(), 201, "the setup's chat message is taken");
}

/// A live stream with `n` WebSocket connections (connected in this process).
async fn stream_with_sockets(env: &TestEnv, prefix: &str, n: usize) -> String {
    let stream = livestream::testing::teacher_stream(env.store(), true, true).await;
    let auth = &env.state.auth;
    for batch in (0..n).collect::<Vec<_>>().chunks(50) {
        futures::future::join_all(batch.iter().map(|i| {
            let stream_id = stream.id.clone();
            async move {
                let t = student(&format!("{prefix}{i}"));
                livestream::service::connections::connect(
                    env.store(),
                    auth,
                    &format!("{prefix}-conn-{i}"),
                    Some(&t),
                    Some(&stream_id),
                )
                .await
                .expect("a student connects");
            }
        }))
        .await;
    }
    stream.id
}

/// Students of `names` joined to a stream over HTTP (in this process).
async fn join_in_process(env: &TestEnv, stream: &livestream::model::Stream, names: &[String]) {
    for names in names.chunks(50) {
        futures::future::join_all(names.iter().map(|name| async move {
            let who = livestream::testing::identity(name, Role::Student);
            livestream::service::presence::enter(
                env.store(),
                &who,
                stream,
                &livestream::model::Session::Http,
            )
            .await
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("students join");
    }
}

/// The table of the `cost` group: every action of a class, `runs` times each.
pub async fn rows(runs: usize) -> Vec<CostRow> {
    if std::env::var_os("COLD_START_BIN_DIR").is_none() {
        println!("building the bootstrap (release, the Lambda's profile)...");
    }
    let dir = cold_start::build(&[("livestream-bootstrap", "bootstrap")]);
    let env = TestEnv::start().await;
    let meter = Meter::start(&env.dynamo.endpoint).await;
    let management = RecordingManagementApi::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs_endpoint = format!("http://{}", listener.local_addr().unwrap());
    let queue = Arc::new(local::sqs::LocalQueue::new(
        &sqs_endpoint,
        "fan-out",
        local::sqs::QueueSettings::default(),
    ));
    let router = local::sqs::router(queue.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let secret = std::str::from_utf8(TEST_SECRET).unwrap();
    let base_env: Vec<(String, String)> = [
        ("TABLE_NAME", TEST_TABLE),
        ("DYNAMODB_ENDPOINT", meter.endpoint.as_str()),
        ("JWT_SECRET", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("WS_MANAGEMENT_ENDPOINT", management.endpoint.as_str()),
        ("FANOUT_QUEUE_URL", queue.url.as_str()),
        ("AWS_ENDPOINT_URL_SQS", sqs_endpoint.as_str()),
        ("FANOUT_THRESHOLD", &FANOUT_THRESHOLD.to_string()),
        ("FANOUT_PAGE_SIZE", &FANOUT_PAGE_SIZE.to_string()),
        // The window is a sleep after posting; measured apart (docs/cost.md).
        ("DELIVERY_WINDOW_MS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let h = Harness {
        env,
        meter,
        management,
        queue,
        bootstrap: dir.join("bootstrap"),
        base_env,
        runs,
    };
    let n = runs + 1;
    let mut rows = Vec::new();

    // The class: a live stream; students connect, join, chat, ask and vote.
    let class = livestream::testing::teacher_stream(h.store(), true, true).await;
    let id = class.id.clone();
    let teacher = token(livestream::testing::TEACHER, Role::Teacher);
    let connect_query = |i: usize| format!("token={}&stream_id={id}", student(&format!("w{i}")));
    rows.push(
        h.measure(
            "connect (WebSocket $connect)",
            "ws-connect",
            async |i| ws("$connect", &format!("cost-w{i}"), &connect_query(i), None),
            |_| {},
        )
        .await,
    );
    rows.push(
        h.measure(
            "keep-alive ping (every 5 min per socket)",
            "ws-default",
            async |i| {
                ws(
                    "$default",
                    &format!("cost-w{i}"),
                    "",
                    Some(r#"{"action":"ping"}"#),
                )
            },
            |_| {},
        )
        .await,
    );
    let join_path = format!("/api/livestream/{id}/join");
    let join = |i: usize| {
        http(
            "POST",
            "/api/livestream/{id}/join",
            &join_path,
            &[("id", &id)],
            &student(&format!("h{i}")),
            json!({}),
        )
    };
    rows.push(
        h.measure(
            "join (HTTP, first)",
            "join-stream",
            async |i| join(i),
            |_| {},
        )
        .await,
    );
    rows.push(
        h.measure(
            "heartbeat (HTTP join again, every 20 s)",
            "join-stream",
            async |i| join(i),
            |_| {},
        )
        .await,
    );
    let chat_path = format!("/api/livestream/{id}/chat");
    rows.push(
        h.measure(
            "chat message",
            "send-chat-message",
            async |i| {
                http(
                    "POST",
                    "/api/livestream/{id}/chat",
                    &chat_path,
                    &[("id", &id)],
                    &student(&format!("h{i}")),
                    json!({ "message": format!("a chat message of about forty chars {i}") }),
                )
            },
            |_| {},
        )
        .await,
    );
    let ask_path = format!("/api/livestream/{id}/questions");
    let mut questions: Vec<String> = Vec::new();
    rows.push(
        h.measure(
            "ask a question",
            "ask-question",
            async |i| {
                http(
                    "POST",
                    "/api/livestream/{id}/questions",
                    &ask_path,
                    &[("id", &id)],
                    &student(&format!("h{i}")),
                    json!({ "text": format!("Why does the example on slide {i} work?") }),
                )
            },
            |answer| {
                let body: Value =
                    serde_json::from_str(answer["body"].as_str().unwrap_or("{}")).unwrap();
                questions.push(body["id"].as_str().expect("the question's id").into());
            },
        )
        .await,
    );
    let question_path = |q: &str, what: &str| format!("/api/livestream/{id}/questions/{q}/{what}");
    rows.push(
        h.measure(
            "upvote a question",
            "upvote-question",
            async |i| {
                let q = &questions[i];
                http(
                    "POST",
                    "/api/livestream/{id}/questions/{question_id}/upvote",
                    &question_path(q, "upvote"),
                    &[("id", &id), ("question_id", q)],
                    &student(&format!("h{}", (i + 1) % n)),
                    json!({}),
                )
            },
            |_| {},
        )
        .await,
    );
    rows.push(
        h.measure(
            "answer a question (teacher)",
            "answer-question",
            async |i| {
                let q = &questions[i];
                http(
                    "PUT",
                    "/api/livestream/{id}/questions/{question_id}/answer",
                    &question_path(q, "answer"),
                    &[("id", &id), ("question_id", q)],
                    &teacher,
                    json!({ "answer": "Because the loop runs once more." }),
                )
            },
            |_| {},
        )
        .await,
    );
    rows.push(
        h.measure(
            "disconnect (WebSocket $disconnect)",
            "ws-disconnect",
            async |i| ws("$disconnect", &format!("cost-w{i}"), "", None),
            |_| {},
        )
        .await,
    );

    // Stops: streams with nobody watching, then with STOP_WATCHING students.
    for watching in [0, STOP_WATCHING] {
        let mut streams = Vec::with_capacity(n);
        for s in 0..n {
            let stream = livestream::testing::teacher_stream(h.store(), true, true).await;
            let names: Vec<String> = (0..watching).map(|i| format!("stop{s}-{i}")).collect();
            join_in_process(&h.env, &stream, &names).await;
            streams.push(stream.id);
        }
        rows.push(
            h.measure(
                &format!("stop the class, {watching} watching"),
                "stop-stream",
                async |i| {
                    let s = &streams[i];
                    http(
                        "POST",
                        "/api/livestream/{id}/stop",
                        &format!("/api/livestream/{s}/stop"),
                        &[("id", s)],
                        &teacher,
                        json!({}),
                    )
                },
                |_| {},
            )
            .await,
        );
    }

    // The broadcaster: one chat message's batch to a stream posted directly, and to
    // one large enough for the fan-out queue; then a page of that queue.
    let direct = stream_with_sockets(&h.env, "d", DIRECT_VIEWERS).await;
    let queued = stream_with_sockets(&h.env, "q", QUEUED_VIEWERS).await;
    for (stream_id, viewers, prefix) in [
        (&direct, DIRECT_VIEWERS, "d"),
        (&queued, QUEUED_VIEWERS, "q"),
    ] {
        let mut reader = h.env.change_stream().await;
        let env = &h.env;
        let row = h
            .measure(
                &format!("broadcast 1 chat message's batch, {viewers} sockets"),
                "broadcast",
                async |i| {
                    chat_in_process(env, stream_id, &format!("{prefix}{i}"), "hello").await;
                    serde_json::to_value(reader.drain().await.expect("the change stream reads"))
                        .unwrap()
                },
                |_| {},
            )
            .await;
        rows.push(row);
    }
    let mut pages = Vec::new();
    while let Some(message) = h.queue.receive(1).pop() {
        if let Some(receipt) = &message.receipt_handle {
            h.queue.delete(receipt);
        }
        let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or("{}")).unwrap();
        if body["connection_ids"].as_array().map_or(0, Vec::len) == FANOUT_PAGE_SIZE {
            pages.push(json!({ "Records": [message] }));
        }
    }
    assert!(
        pages.len() >= n,
        "a full page per batch to the large stream"
    );
    rows.push(
        h.measure(
            &format!("fan-out page, {FANOUT_PAGE_SIZE} sockets"),
            "fan-out",
            async |i| pages[i].clone(),
            |_| {},
        )
        .await,
    );
    rows
}

/// A run's calls in the order they started: `Operation(units)`, `+` between calls in
/// flight together, `->` between round trips, `!` after a refused one.
fn sequence(calls: &[StoreCall]) -> String {
    let mut calls: Vec<&StoreCall> = calls.iter().collect();
    calls.sort_by_key(|c| c.started);
    let mut out = String::new();
    let mut busy_until = None;
    for call in calls {
        let units = match (call.read_units, call.write_units) {
            (r, w) if w > 0.0 => format!(
                "{w}w{}",
                if r > 0.0 {
                    format!(" {r}r")
                } else {
                    String::new()
                }
            ),
            (r, _) if r > 0.0 => format!("{r}r"),
            _ => String::new(),
        };
        let refused = if call.error.is_some() { "!" } else { "" };
        match busy_until {
            Some(until) if call.started < until => out.push_str(" + "),
            Some(_) => out.push_str(" -> "),
            None => {}
        }
        out.push_str(&format!("{}({units}){refused}", call.operation));
        busy_until = Some(busy_until.map_or(call.ended, |u: std::time::Instant| u.max(call.ended)));
    }
    out
}

pub fn print(rows: &[CostRow], runs: usize) {
    println!();
    CostRow::print_header();
    for row in rows {
        row.print();
    }
    println!("\nthe store calls of each action's last run (r: read units, w: write units):");
    for row in rows {
        let calls = if row.calls.len() > 12 {
            format!(
                "{} calls, {} round trips",
                row.calls.len(),
                Usage::of(&row.calls).round_trips
            )
        } else {
            sequence(&row.calls)
        };
        println!("- {}: {calls}", row.action);
    }
    println!(
        "\nper invocation: store calls and round trips in sequence (a-b: they varied), read \
         and write units as DynamoDB counts them (means; ReturnConsumedCapacity=INDEXES), \
         Lambda time the median of {runs} warm invocations of the release bootstrap under \
         the Runtime API emulator (store on loopback, the meter's hop included), frames \
         posted to @connections, messages put on the fan-out queue"
    );
}
