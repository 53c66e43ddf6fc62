//! What the end-to-end tests share: an HTTP client of the stack's API, WebSocket
//! clients, tokens, the stack's table, and an encoder (ffmpeg) pushing a test pattern.
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures::StreamExt;
use livestream::auth::Role;
use livestream::store::Store;
use local::{LOCAL_JWT_SECRET, LocalStack, dev_token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

/// Upper bound of every wait; waits end as soon as what they wait for happens.
pub const WAIT: Duration = Duration::from_secs(30);

/// The teacher whom [`Client`]'s helpers create courses and streams as.
pub const TEACHER: &str = "teacher-1";

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn token(user: &str, role: Role) -> String {
    dev_token(LOCAL_JWT_SECRET, user, role, user, 1)
}

/// The HTTP API of a stack at `base`: one in this process (`stack.http_url`) or the
/// `local` binary.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_string(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET of any URL (a playlist), without a token: its status and body.
    pub async fn fetch(&self, url: &str) -> (u16, String) {
        let response = self.http.get(url).send().await.unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// `method path` as the holder of `token`, which must answer `expected`: the body.
    async fn expect(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.call(method, path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        answer
    }

    /// `method path` as [`TEACHER`], which must answer `expected`: the body.
    async fn as_teacher(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let teacher = token(TEACHER, Role::Teacher);
        self.expect(expected, method, path, &teacher, body).await
    }

    /// A new course of [`TEACHER`] with `enrolled` enrolled: its id.
    pub async fn course(&self, enrolled: &[&str]) -> String {
        let course = self
            .as_teacher(201, "POST", "/api/courses", Some(json!({"title": "Rust"})))
            .await;
        let course_id = course["id"].as_str().unwrap().to_string();
        for student in enrolled {
            let path = format!("/api/courses/{course_id}/enrollments");
            self.as_teacher(201, "POST", &path, Some(json!({"user_id": student})))
                .await;
        }
        course_id
    }

    /// A new stream of [`TEACHER`] in `course_id`, scheduled (not started): its id.
    pub async fn scheduled_stream(&self, course_id: &str, public: bool) -> String {
        let body = json!({"title": "Lecture", "course_id": course_id, "is_public": public});
        let stream = self
            .as_teacher(201, "POST", "/api/livestream/", Some(body))
            .await;
        stream["id"].as_str().unwrap().to_string()
    }

    /// Starts the stream `id` as [`TEACHER`].
    pub async fn start(&self, id: &str) {
        let path = format!("/api/livestream/{id}/start");
        self.as_teacher(200, "POST", &path, None).await;
    }

    /// Stops the stream `id` as [`TEACHER`]: the stream as it ended.
    pub async fn stop(&self, id: &str) -> Value {
        let path = format!("/api/livestream/{id}/stop");
        self.as_teacher(200, "POST", &path, None).await
    }

    /// The stream `id` as [`TEACHER`] sees it.
    pub async fn stream(&self, id: &str) -> Value {
        let path = format!("/api/livestream/{id}");
        self.as_teacher(200, "GET", &path, None).await
    }

    /// Posts `message` to the chat of the stream `id` as the holder of `token`.
    pub async fn chat(&self, id: &str, token: &str, message: &str) {
        let path = format!("/api/livestream/{id}/chat");
        self.expect(
            201,
            "POST",
            &path,
            token,
            Some(json!({ "message": message })),
        )
        .await;
    }

    /// A live stream of [`TEACHER`] in a new course, with `enrolled` enrolled: its id.
    pub async fn live_stream(&self, public: bool, enrolled: &[&str]) -> String {
        let course_id = self.course(enrolled).await;
        let id = self.scheduled_stream(&course_id, public).await;
        self.start(&id).await;
        id
    }

    /// Waits until the stream's viewer count is `expected` (the change is asynchronous
    /// only where a socket is involved); fails after [`WAIT`].
    pub async fn wait_for_viewers(&self, id: &str, expected: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let count = self.stream(id).await["viewer_count"].as_i64();
            if count == Some(expected) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "viewer_count stayed {count:?}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A WebSocket client of the stack at `ws_url` on `stream_id`, or the HTTP status its
/// upgrade was refused with.
pub async fn connect(ws_url: &str, token: &str, stream_id: &str) -> Result<Socket, u16> {
    let url = format!("{ws_url}/?token={token}&stream_id={stream_id}");
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("{other}"),
    }
}

/// The frame a socket ended with: a close frame, an error, or `None` (the stream ended).
type End = Option<Result<Message, tungstenite::Error>>;

/// Reads events (frames of one event or arrays of them) until `done` says so or the
/// socket ends, with the frame it ended with; fails after [`WAIT`].
async fn read(
    socket: &mut Socket,
    mut done: impl FnMut(&[Value]) -> bool,
) -> (Vec<Value>, Option<End>) {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&events) {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {events:?}"));
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<Value>(&text).unwrap() {
                Value::Array(many) => events.extend(many),
                one => events.push(one),
            },
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return (events, Some(frame)),
            Some(Ok(_)) => {}
        }
    }
    (events, None)
}

/// Reads events (frames of one event or arrays of them) until `done` says so; fails if
/// the socket ends first.
pub async fn read_until(socket: &mut Socket, done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let (events, end) = read(socket, done).await;
    if let Some(end) = end {
        panic!("socket ended: {end:?}; got {events:?}");
    }
    events
}

/// Reads events until the socket ends (the server closes it): the events before, and
/// the close frame's code if it sent one.
pub async fn read_until_closed(socket: &mut Socket) -> (Vec<Value>, Option<u16>) {
    let (events, end) = read(socket, |_| false).await;
    let code = match end {
        Some(Some(Ok(Message::Close(frame)))) => frame.map(|f| f.code.into()),
        _ => None,
    };
    (events, code)
}

/// Whether `events` hold one of `kind`.
pub fn has_kind(events: &[Value], kind: &str) -> bool {
    events.iter().any(|e| e["type"] == kind)
}

/// Whether `events` hold one of `kind` whose data field `field` is `value`.
pub fn has(events: &[Value], kind: &str, field: &str, value: impl Into<Value>) -> bool {
    let value: Value = value.into();
    events
        .iter()
        .any(|e| e["type"] == kind && e["data"][field] == value)
}

/// The stack's table, as its functions see it.
pub fn store(stack: &LocalStack) -> Store {
    Store::new(
        aws_sdk_dynamodb::Client::from_conf(livestream::embedded::dynamo_config(&stack.dynamo_url)),
        local::TABLE_NAME,
    )
}

/// The id of the (first) connection to the stream `stream_id`, as the function stored
/// it: the one `@connections` addresses.
pub async fn connection_id(store: &Store, stream_id: &str) -> String {
    store.stream_connections(stream_id).await.unwrap()[0]
        .connection_id
        .clone()
}

/// Whether ffmpeg and ffprobe are here; without them a video test says how to get them
/// and passes, except under CI (`CI` set), where it fails.
pub fn encoder_available() -> bool {
    let found = ["ffmpeg", "ffprobe"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        let message = "the video tests need ffmpeg and ffprobe: apt-get install ffmpeg";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipping a video test: {message}");
    }
    found
}

/// An encoder pushing a 1280x720 30 fps H.264 test pattern with AAC audio, as OBS would
/// with the stream key; killed when dropped.
pub struct Encoder {
    child: tokio::process::Child,
}

impl Encoder {
    pub fn push(ingest_url: &str, stream_key: &str) -> Self {
        let child = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-pix_fmt", "yuv420p", "-g", "30", "-c:a", "aac", "-b:a", "128k",
            ])
            .args(["-t", "600", "-f", "flv"])
            .arg(format!("{ingest_url}{stream_key}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg starts");
        Self { child }
    }

    /// Waits for the encoder to stop by itself (refused or cut off).
    pub async fn exited(&mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the encoder was not cut off")
            .unwrap()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills it as a crash or a closed laptop lid would: no clean end of stream.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// What ffprobe finds in a playlist: `(codec, width, height)` per stream.
pub async fn probe(url: &str) -> Vec<(String, u64, u64)> {
    let output = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "json", url])
        .output()
        .await
        .expect("ffprobe runs");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    json["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .map(|s| {
                    (
                        s["codec_name"].as_str().unwrap_or_default().to_string(),
                        s["width"].as_u64().unwrap_or(0),
                        s["height"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` until it returns `Some`, up to [`WAIT`].
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `local` binary on free ports over `data_dir`, as `cargo run -p local` runs it.
pub struct Process {
    pub child: std::process::Child,
    pub http: String,
    pub ws: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the stack's binary over `data_dir` and waits until it answers.
pub async fn spawn_stack(data_dir: &std::path::Path) -> Process {
    let (http, ws, dynamo) = (free_port(), free_port(), free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local"));
    command
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .env("LOCAL_HTTP_PORT", http.to_string())
        .env("LOCAL_WS_PORT", ws.to_string())
        .env("LOCAL_DYNAMO_PORT", dynamo.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Ports no test reads: any free one.
    for name in [
        "LOCAL_SQS_PORT",
        "LOCAL_RTMP_PORT",
        "LOCAL_IVS_PORT",
        "LOCAL_S3_PORT",
    ] {
        command.env(name, "0");
    }
    let process = Process {
        child: command.spawn().unwrap(),
        http: format!("http://127.0.0.1:{http}"),
        ws: format!("ws://127.0.0.1:{ws}"),
    };
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{}/api/livestream/active", process.http))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stack did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process
}

impl Process {
    /// `kill -9`: no clean shutdown of anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as a service manager stops it; waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
