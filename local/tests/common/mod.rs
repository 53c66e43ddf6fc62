//! What the end-to-end tests share: an HTTP client of the stack's API, WebSocket
//! clients, tokens, and an encoder (ffmpeg) pushing a test pattern.
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures::StreamExt;
use livestream::auth::Role;
use local::{LOCAL_JWT_SECRET, LocalStack, dev_token};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound of every wait; waits end as soon as what they wait for happens.
pub const WAIT: Duration = Duration::from_secs(30);

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn token(user: &str, role: Role) -> String {
    dev_token(LOCAL_JWT_SECRET, user, role, user, 1)
}

/// The stack's HTTP API.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn of(stack: &LocalStack) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: stack.http_url.clone(),
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
}

pub async fn connect(stack: &LocalStack, token: &str, stream_id: &str) -> Result<Socket, u16> {
    let url = format!("{}/?token={token}&stream_id={stream_id}", stack.ws_url);
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

/// Reads events (frames of one event or arrays of them) until `done` says so.
pub async fn read_until(socket: &mut Socket, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
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
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}; got {events:?}"),
        }
    }
    events
}

/// Whether `events` hold one of `kind` whose data field `field` is `value`.
pub fn has(events: &[Value], kind: &str, field: &str, value: &str) -> bool {
    events
        .iter()
        .any(|e| e["type"] == kind && e["data"][field] == value)
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
