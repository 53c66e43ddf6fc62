//! Cold starts as Lambda does them: a minimal Lambda Runtime API on loopback, and the
//! function's release binary started as a fresh process with `AWS_LAMBDA_RUNTIME_API`
//! pointing at it. Init is from spawn to the first `GET .../invocation/next` (what
//! Lambda reports as Init Duration), first invoke from handing over the event to the
//! response, warm the median of later invokes; peak RSS is the process's `VmHWM`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc};

const API: &str = "/2018-06-01/runtime";

/// What the emulator reports to the harness.
enum Seen {
    /// The runtime asked for its first event: init is over.
    Polled(Instant),
    /// The function's answer (its JSON), or the error it reported.
    Responded(Instant, Result<serde_json::Value, String>),
}

struct Emulator {
    events: Mutex<mpsc::Receiver<(String, serde_json::Value)>>,
    seen: mpsc::UnboundedSender<Seen>,
    polled_once: std::sync::atomic::AtomicBool,
}

async fn next(State(emu): State<Arc<Emulator>>) -> axum::response::Response {
    if !emu
        .polled_once
        .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        let _ = emu.seen.send(Seen::Polled(Instant::now()));
    }
    let Some((id, event)) = emu.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ASCII header"));
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0".into(),
    );
    (headers, axum::Json(event)).into_response()
}

async fn response(
    State(emu): State<Arc<Emulator>>,
    UrlPath(_id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let answer = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let _ = emu.seen.send(Seen::Responded(Instant::now(), Ok(answer)));
    StatusCode::ACCEPTED
}

async fn error(State(emu): State<Arc<Emulator>>, body: axum::body::Bytes) -> StatusCode {
    let message = String::from_utf8_lossy(&body).to_string();
    let _ = emu.seen.send(Seen::Responded(Instant::now(), Err(message)));
    StatusCode::ACCEPTED
}

/// One cold start and `warm` warm invocations of `binary`.
pub struct Sample {
    pub init: Duration,
    pub first: Duration,
    pub warm: Duration,
    pub peak_rss_kib: u64,
}

/// The process's peak resident set, from `/proc` (Linux only).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn wait_for(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), seen.recv())
        .await
        .expect("the function answers within 30 s")
        .expect("the emulator runs")
}

/// A function's process started as Lambda starts it, behind its own Runtime API
/// emulator: events are handed over one at a time, as Lambda does to an instance.
pub struct Instance {
    name: String,
    child: std::process::Child,
    events: mpsc::Sender<(String, serde_json::Value)>,
    seen: mpsc::UnboundedReceiver<Seen>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    invoked: usize,
    /// Spawn to the first `invocation/next` (Lambda's Init Duration).
    pub init: Duration,
}

impl Instance {
    /// Starts `binary` with `env` (and the variables Lambda sets) and waits until it
    /// asks for its first event.
    pub async fn start(binary: &Path, env: &[(String, String)]) -> Self {
        let (events, events_rx) = mpsc::channel(1);
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let emulator = Arc::new(Emulator {
            events: Mutex::new(events_rx),
            seen: seen_tx,
            polled_once: Default::default(),
        });
        let app = axum::Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API}/init/error"), post(error))
            .with_state(emulator);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let name = binary.file_name().unwrap().to_string_lossy().to_string();
        let spawned = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let Seen::Polled(polled) = wait_for(&mut seen).await else {
            panic!("{name} answered before it asked for an event");
        };
        Self {
            name,
            child,
            events,
            seen,
            server,
            invoked: 0,
            init: polled - spawned,
        }
    }

    /// Hands `event` over and waits for the answer: the time from handing it over to
    /// the answer, and the answer (or the error the function reported).
    pub async fn invoke(
        &mut self,
        event: &serde_json::Value,
    ) -> (Duration, Result<serde_json::Value, String>) {
        self.invoked += 1;
        let sent = Instant::now();
        self.events
            .send((format!("req-{}", self.invoked), event.clone()))
            .await
            .unwrap();
        match wait_for(&mut self.seen).await {
            Seen::Responded(at, answer) => (at - sent, answer),
            Seen::Polled(_) => unreachable!("{} polled once", self.name),
        }
    }

    /// The process's peak resident set so far.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.child.id()).unwrap_or(0)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

/// Starts `binary` as Lambda would and measures one cold start.
pub async fn cold_start(
    binary: &Path,
    env: &[(String, String)],
    event: &serde_json::Value,
    warm: usize,
) -> Sample {
    let mut instance = Instance::start(binary, env).await;
    let invoke = async |instance: &mut Instance| {
        let (took, answer) = instance.invoke(event).await;
        let status = match answer {
            Ok(answer) => answer["statusCode"].as_u64().unwrap_or(200),
            Err(message) => panic!("{} reported an error: {message}", instance.name),
        };
        assert!(status < 300, "{} answered {status}", instance.name);
        took
    };
    let first = invoke(&mut instance).await;
    let mut warm_times = Vec::with_capacity(warm);
    for _ in 1..=warm {
        warm_times.push(invoke(&mut instance).await);
    }
    Sample {
        init: instance.init,
        first,
        warm: median(&mut warm_times),
        peak_rss_kib: instance.peak_rss_kib(),
    }
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Builds the measured binaries with the profile the Lambda is deployed with (release;
/// dev when this benchmark is a debug build) and returns their directory.
/// `COLD_START_BIN_DIR` measures binaries built elsewhere instead (another profile,
/// other rustflags).
pub fn build(binaries: &[(&str, &str)]) -> PathBuf {
    if let Some(dir) = std::env::var_os("COLD_START_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // This benchmark runs from `<target>/<its profile>/`, often `local`, not release.
    let own_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = if cfg!(debug_assertions) {
        own_dir
    } else {
        own_dir.parent().unwrap().join("release")
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One build per package: built together, the packages' features would unify (the
    // bench's test utilities into the function) and the binary would not be the one
    // that is deployed.
    for (package, bin) in binaries {
        let mut command = Command::new(&cargo);
        command.args(["build", "--quiet", "-p", package, "--bin", bin]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building {package} {bin} failed");
    }
    dir
}

/// A row of the cold-start table: medians of `runs` cold starts.
pub struct ColdRow {
    pub name: String,
    pub init: Duration,
    pub first: Duration,
    pub warm: Duration,
    pub peak_rss_mib: f64,
    pub size_mb: f64,
}

pub async fn measure(
    name: &str,
    binary: &Path,
    env: &[(String, String)],
    event: &serde_json::Value,
    runs: usize,
) -> ColdRow {
    let mut init = Vec::new();
    let mut first = Vec::new();
    let mut warm = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let sample = cold_start(binary, env, event, 20).await;
        init.push(sample.init);
        first.push(sample.first);
        warm.push(sample.warm);
        rss.push(sample.peak_rss_kib);
    }
    rss.sort();
    ColdRow {
        name: name.into(),
        init: median(&mut init),
        first: median(&mut first),
        warm: median(&mut warm),
        peak_rss_mib: rss[rss.len() / 2] as f64 / 1024.0,
        size_mb: std::fs::metadata(binary).map_or(0.0, |m| m.len() as f64 / 1e6),
    }
}

pub fn print(rows: &[ColdRow]) {
    let baseline = rows.first().map_or(Duration::ZERO, |r| r.init);
    println!(
        "| {:<44} | {:>8} | {:>7} | {:>9} | {:>8} | {:>8} | {:>7} |",
        "cold start (medians)", "init ms", "× hello", "1st inv ms", "warm ms", "RSS MiB", "size MB"
    );
    println!(
        "|{:-<46}|{:->10}|{:->9}|{:->12}|{:->10}|{:->10}|{:->9}|",
        "", "", "", "", "", "", ""
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for row in rows {
        println!(
            "| {:<44} | {:>8.2} | {:>7.2} | {:>10.2} | {:>8.2} | {:>8.1} | {:>7.1} |",
            row.name,
            ms(row.init),
            ms(row.init) / ms(baseline).max(f64::EPSILON),
            ms(row.first),
            ms(row.warm),
            row.peak_rss_mib,
            row.size_mb
        );
    }
}
