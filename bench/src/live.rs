//! Live delivery through the local stack with real WebSocket clients on loopback:
//! viewers connect all at once (a connect storm) while the teacher chats, then the
//! teacher chats 10 messages a second; each client notes when every `chat.message`
//! arrives. The stack runs on its own runtime whose threads are named `stack` (the
//! embedded store on a thread of its own), so its CPU time is read apart from the
//! clients' (from `/proc/self/task`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use livestream::auth::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::Row;

const CHAT_INTERVAL: Duration = Duration::from_millis(100);

/// CPU seconds used so far by the stack's threads: its runtime's (named `stack`) and
/// the embedded store's.
pub(crate) fn stack_cpu_seconds() -> f64 {
    let ticks_per_second = 100.0;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("stack") && comm.trim_end() != livestream::embedded::STORE_THREAD {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        ticks += fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ticks as f64 / ticks_per_second
}

/// When each viewer got each chat seq, and how many frames it got.
#[derive(Default)]
struct Received {
    arrivals: Vec<(i64, Instant)>,
    frames: Vec<Instant>,
}

struct Class {
    http: reqwest::Client,
    base: String,
    teacher: String,
    stream_id: String,
}

impl Class {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.teacher)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn open(stack_http: &str) -> Self {
        let mut class = Self {
            http: reqwest::Client::new(),
            base: stack_http.to_string(),
            teacher: local::dev_token(local::LOCAL_JWT_SECRET, "teacher-1", Role::Teacher, "T", 1),
            stream_id: String::new(),
        };
        let course = class
            .call("POST", "/api/courses", json!({"title": "Live"}))
            .await;
        let stream = class
            .call(
                "POST",
                "/api/livestream/",
                json!({"title": "Live", "course_id": course["id"]}),
            )
            .await;
        class.stream_id = stream["id"].as_str().unwrap().to_string();
        class
            .call(
                "POST",
                &format!("/api/livestream/{}/start", class.stream_id),
                json!({}),
            )
            .await;
        class
    }

    /// Sends one message; returns its seq and when it was sent.
    async fn chat(&self, i: usize) -> (i64, Instant) {
        let sent = Instant::now();
        let reply = self
            .call(
                "POST",
                &format!("/api/livestream/{}/chat", self.stream_id),
                json!({"message": format!("m{i}")}),
            )
            .await;
        (reply["seq"].as_i64().expect("chat accepted"), sent)
    }
}

/// Opens a viewer's socket and records what it receives until the socket closes.
async fn viewer(
    ws_url: String,
    stream_id: String,
    i: usize,
    log: Arc<Mutex<Received>>,
    open: Arc<AtomicUsize>,
) {
    let token = local::dev_token(
        local::LOCAL_JWT_SECRET,
        &format!("viewer-{i}"),
        Role::Student,
        "V",
        1,
    );
    let url = format!("{ws_url}/?token={token}&stream_id={stream_id}");
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    open.fetch_add(1, Ordering::Relaxed);
    while let Some(Ok(frame)) = socket.next().await {
        let Message::Text(text) = frame else { continue };
        let now = Instant::now();
        let events = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(events)) => events,
            Ok(event) => vec![event],
            Err(_) => continue,
        };
        let mut log = log.lock().unwrap();
        log.frames.push(now);
        for event in events {
            if event["type"] == "chat.message" {
                log.arrivals
                    .push((event["data"]["seq"].as_i64().unwrap_or(0), now));
            }
        }
    }
}

fn latencies(
    logs: &[Arc<Mutex<Received>>],
    sent: &std::collections::HashMap<i64, Instant>,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for log in logs {
        for (seq, at) in &log.lock().unwrap().arrivals {
            if let Some(sent_at) = sent.get(seq) {
                out.push(at.saturating_duration_since(*sent_at));
            }
        }
    }
    out
}

/// Waits until no frame has reached any viewer for half a second (at least 2 s, at
/// most 30 s after `since`); returns how long after `since` the last frame came.
async fn drain(logs: &[Arc<Mutex<Received>>], since: Instant) -> Duration {
    let quiet = Duration::from_millis(500);
    let last_frame = || {
        logs.iter()
            .filter_map(|l| l.lock().unwrap().frames.last().copied())
            .max()
            .unwrap_or(since)
            .max(since)
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    while last_frame().elapsed() < quiet && since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last_frame() - since
}

/// Rows for `viewers` sockets: the connect storm, chat during it, and steady chat at
/// 10 messages a second for `seconds`, with the stack's CPU share in the notes.
pub async fn rows(viewers: usize, seconds: u64, window: Duration) -> (Vec<Row>, Vec<String>) {
    let stack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("stack")
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let defaults = local::Config::on_free_ports(Some(data.path().to_path_buf()));
    // BENCH_FUNCTION_CONCURRENCY: invocations of one function at once (the stack's
    // default unless set), to see what the cap does to a storm.
    let function_concurrency = std::env::var("BENCH_FUNCTION_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(defaults.function_concurrency);
    let config = local::Config {
        delivery_window: window,
        function_concurrency,
        ..defaults
    };
    let stack = stack_rt
        .spawn(local::LocalStack::start(config))
        .await
        .unwrap()
        .unwrap();
    let class = Class::open(&stack.http_url).await;
    let label = format!(
        "{viewers} sockets{}",
        if window.is_zero() {
            String::new()
        } else {
            format!(", {} ms window", window.as_millis())
        }
    );

    // The storm: every viewer connects at once while the teacher keeps chatting.
    let logs: Vec<Arc<Mutex<Received>>> = (0..viewers).map(|_| Arc::default()).collect();
    let mut sent = std::collections::HashMap::new();
    let storm_started = Instant::now();
    let open = Arc::new(AtomicUsize::new(0));
    let mut sockets = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        sockets.push(tokio::spawn(viewer(
            stack.ws_url.clone(),
            class.stream_id.clone(),
            i,
            log.clone(),
            open.clone(),
        )));
    }
    let mut i = 0;
    let mut slowest_send = Duration::ZERO;
    while open.load(Ordering::Relaxed) < viewers
        && storm_started.elapsed() < Duration::from_secs(60)
    {
        let (seq, at) = class.chat(i).await;
        slowest_send = slowest_send.max(at.elapsed());
        sent.insert(seq, at);
        i += 1;
        tokio::time::sleep(CHAT_INTERVAL).await;
    }
    let storm = storm_started.elapsed();
    // Connected is not yet counted: the stream's viewer count reaches every socket
    // once each $connect's presence write is done.
    let counted = loop {
        let stream: Value = class
            .http
            .get(format!("{}/api/livestream/{}", class.base, class.stream_id))
            .bearer_auth(&class.teacher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if stream["viewer_count"].as_u64() == Some(viewers as u64)
            || storm_started.elapsed() > Duration::from_secs(60)
        {
            break storm_started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Messages of the storm reach the sockets open when they were sent, and the
    // storm's own events (a viewer count per batch of connects) drain: the steady part
    // starts once no frame has reached any viewer for half a second.
    let drained = drain(&logs, storm_started + storm).await;
    let during_storm = latencies(&logs, &sent);
    let storm_frames: usize = logs.iter().map(|l| l.lock().unwrap().frames.len()).sum();

    // Steady chat.
    for log in &logs {
        *log.lock().unwrap() = Received::default();
    }
    sent.clear();
    let cpu_before = stack_cpu_seconds();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(CHAT_INTERVAL);
    let messages = (seconds * 1000 / CHAT_INTERVAL.as_millis() as u64) as usize;
    for _ in 0..messages {
        ticker.tick().await;
        let (seq, at) = class.chat(i).await;
        sent.insert(seq, at);
        i += 1;
    }
    tokio::time::sleep(Duration::from_secs(1) + window).await;
    let elapsed = started.elapsed();
    let cpu = stack_cpu_seconds() - cpu_before;
    let steady = latencies(&logs, &sent);
    // The shortest time between two frames to one viewer: at least the window when
    // the window holds.
    let mut gaps: Vec<Duration> = logs
        .iter()
        .flat_map(|l| {
            let frames = l.lock().unwrap().frames.clone();
            frames
                .windows(2)
                .map(|w| w[1].saturating_duration_since(w[0]))
                .collect::<Vec<_>>()
        })
        .collect();
    gaps.sort();
    let frames: usize = logs.iter().map(|l| l.lock().unwrap().frames.len()).sum();
    let expected = messages * viewers;
    let notes = vec![format!(
        "{label}: storm of {viewers} connects took {:.2} s to open every socket, {:.2} s until the stream counted them all (slowest chat send meanwhile {:.2} s, its frames drained {:.1} s after the last connect, {:.1} frames per viewer by then); steady chat {messages} messages in {:.1} s: {} of {expected} deliveries, stack CPU {:.0} % of a core, {:.1} frames per viewer over {} messages, shortest gap between two frames to a viewer {} ms, median {} ms",
        storm.as_secs_f64(),
        counted.as_secs_f64(),
        slowest_send.as_secs_f64(),
        drained.as_secs_f64(),
        storm_frames as f64 / viewers as f64,
        elapsed.as_secs_f64(),
        steady.len(),
        100.0 * cpu / elapsed.as_secs_f64(),
        frames as f64 / viewers as f64,
        messages,
        gaps.first().map_or(0, Duration::as_millis),
        gaps.get(gaps.len() / 2).map_or(0, Duration::as_millis),
    )];
    let rows = vec![
        Row {
            name: format!("{label}: chat delivery during the connect storm"),
            ops: during_storm.len(),
            elapsed: storm,
            latencies: during_storm,
        },
        Row {
            name: format!("{label}: chat every 100 ms, delivery"),
            ops: steady.len(),
            elapsed,
            latencies: steady,
        },
    ];
    for socket in sockets {
        socket.abort();
    }
    stack_rt.spawn(stack.shutdown()).await.unwrap();
    stack_rt.shutdown_background();
    (rows, notes)
}
