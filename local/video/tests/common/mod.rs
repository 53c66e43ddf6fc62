//! Test harness: the ingest on loopback ports, ffmpeg encoders, and a minimal HTTP client.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use local_video::{Authorize, Ingest, IngestConfig, IngestEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Upper bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// ffmpeg encodes in real time on a 2-core machine: one encoder at a time.
pub static ENCODER_SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether ffmpeg and ffprobe can run; without them a test is skipped, except on CI.
pub fn ffmpeg_available() -> bool {
    let found = ["ffmpeg", "ffprobe"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffmpeg/ffprobe not found on PATH (CI): apt-get install -y ffmpeg"
        );
        println!(
            "skipped: ffmpeg/ffprobe not found on PATH; install them with `apt-get install -y ffmpeg`"
        );
    }
    found
}

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most [`WAIT`].
pub async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The ingest serving RTMP and HTTP on loopback ports.
pub struct Stack {
    pub ingest: Ingest,
    pub events: mpsc::UnboundedReceiver<IngestEvent>,
    pub rtmp_port: u16,
    pub http_port: u16,
    stop: watch::Sender<bool>,
    rtmp: Option<JoinHandle<()>>,
    http: JoinHandle<()>,
}

impl Stack {
    pub async fn start(config: IngestConfig, authorize: Authorize) -> Self {
        let (ingest, events) = Ingest::new(config);
        let rtmp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rtmp_port = rtmp_listener.local_addr().unwrap().port();
        let http_port = http_listener.local_addr().unwrap().port();
        let (stop, stopped) = watch::channel(false);
        let rtmp = tokio::spawn(ingest.clone().serve_rtmp(rtmp_listener, stopped));
        let router = ingest.playback_router(authorize);
        let http = tokio::spawn(async move {
            axum::serve(http_listener, router).await.unwrap();
        });
        Self {
            ingest,
            events,
            rtmp_port,
            http_port,
            stop,
            rtmp: Some(rtmp),
            http,
        }
    }

    pub async fn open() -> Self {
        Self::start(IngestConfig::default(), Arc::new(|_, _| true)).await
    }

    pub fn rtmp_url(&self, stream_key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/app/{stream_key}", self.rtmp_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.http_port, path).await
    }

    /// The next event, failing after [`WAIT`].
    pub async fn next_event(&mut self) -> IngestEvent {
        within("an ingest event", self.events.recv())
            .await
            .expect("event channel open")
    }

    /// Asserts no event is waiting.
    pub fn assert_no_event(&mut self) {
        if let Ok(event) = self.events.try_recv() {
            panic!("unexpected event {event:?}");
        }
    }

    /// Stops the RTMP server and waits for `serve_rtmp` to return.
    pub async fn stop_rtmp(&mut self) {
        self.stop.send_replace(true);
        if let Some(rtmp) = self.rtmp.take() {
            within("serve_rtmp to return", rtmp).await.unwrap();
        }
    }

    /// The live playlist (requested with `query`), once it lists at least `segments` segments.
    pub async fn playlist_with(&self, channel_id: &str, query: &str, segments: usize) -> String {
        let path = format!("/video/{channel_id}/index.m3u8{query}");
        poll("the playlist to list segments", || async {
            let response = self.get(&path).await;
            let text = String::from_utf8(response.body).unwrap();
            (response.status == 200 && segment_uris(&text).len() >= segments).then_some(text)
        })
        .await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.http.abort();
    }
}

/// The `seg-*.m4s` URIs a playlist lists.
pub fn segment_uris(playlist: &str) -> Vec<&str> {
    playlist.lines().filter(|l| l.starts_with("seg-")).collect()
}

/// The media sequence number in a `seg-<n>.m4s[?…]` URI.
pub fn sequence_of(uri: &str) -> u64 {
    uri.trim_start_matches("seg-")
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the test encoder sends.
#[derive(Clone, Copy)]
pub enum TestSource {
    /// 1280x720 30 fps H.264 (1 s GOP) with 48 kHz AAC, as the brief's OBS stand-in.
    Hd,
    /// 320x240, cheaper to encode, for tests about session control.
    Small,
    /// Sorenson H.263 video: not playable, the ingest must report a failure.
    Unsupported,
}

/// An ffmpeg process pushing a test stream in real time; killed when dropped.
pub struct Encoder {
    child: Child,
    pub log: PathBuf,
}

impl Encoder {
    pub fn push(url: &str, source: TestSource) -> Self {
        let size = match source {
            TestSource::Hd => "1280x720",
            TestSource::Small | TestSource::Unsupported => "320x240",
        };
        let video_codec: &[&str] = match source {
            TestSource::Unsupported => &["-c:v", "flv1"],
            _ => &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "30",
            ],
        };
        let video_source = format!("testsrc2=size={size}:rate=30");
        let inputs: &[&str] = &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            &video_source,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ];
        let output: &[&str] = &["-c:a", "aac", "-b:a", "128k", "-f", "flv", url];
        Self::spawn([inputs, video_codec, output].concat())
    }

    pub fn spawn(args: Vec<&str>) -> Self {
        let log =
            std::env::temp_dir().join(format!("local-video-ffmpeg-{}.log", ulid::Ulid::generate()));
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("ffmpeg starts");
        Self { child, log }
    }

    /// Waits for ffmpeg to exit on its own.
    pub async fn exited(&mut self) -> ExitStatus {
        within("ffmpeg to exit", self.child.wait()).await.unwrap()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGSTOP: the encoder freezes with its connection open, like a laptop whose lid closed.
    pub fn freeze(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: the encoder dies without closing its RTMP session.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // The log explains a failure; a passing test leaves nothing behind.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Runs ffprobe on `url`, returning its JSON description of the streams.
pub async fn ffprobe_streams(url: &str) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate",
        ])
        .args(["-of", "json", url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = within("ffprobe", output).await.unwrap();
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A plain HTTP/1.1 GET on loopback.
pub async fn http_get(port: u16, path: &str) -> HttpResponse {
    within("an HTTP response", async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        assert!(
            !headers
                .iter()
                .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
            "this client reads only sized bodies"
        );
        HttpResponse {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    })
    .await
}
