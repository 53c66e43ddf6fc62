//! Live video through the local stack, as a class pushes and plays it: the teacher
//! creates a public stream and reads its `ingest_url` and `stream_key` from the API,
//! ffmpeg pushes a 1280x720 30 fps test pattern at 6 Mbps (x264 ultrafast, zerolatency,
//! AAC 128k) over RTMP on loopback, and players poll the HLS playlist the stack serves.
//! Each scenario runs on a fresh stack on its own runtime, whose threads are named
//! `stack` (the embedded store on a thread of its own), so its CPU time is read apart
//! from the clients' (from `/proc/self/task`); ffmpeg is a process of its own and is
//! not counted (its CPU is printed beside). Measured:
//!
//! - Delay to playable, with a 1 s GOP (`-g 30`) and a 2 s GOP (`-g 60`, what OBS users
//!   set): from ffmpeg's spawn to the first segment listed; then, for every segment of
//!   ~20 s of steady push, L = when it was first listed (the playlist polled every
//!   20 ms) minus its `#EXT-X-PROGRAM-DATE-TIME` (the wall clock when its first frame
//!   arrived at the ingest). A segment is listed once the keyframe after it arrives, so
//!   L holds the segment's duration d. A player that starts two segments back from the
//!   newest, as web/player.js does, starts on segment N-1 when segment N is listed and
//!   then plays on: every frame is shown L(N) + d(N-1) = listed(N) - first frame of N-1
//!   after it arrived, printed per segment as the frame-to-screen estimate (the
//!   player's own poll, fetch and decode come on top).
//! - The stack's CPU over ~20 s of one 6 Mbps ingest with nobody watching, then with 50
//!   HLS players (each its own client polling every 500 ms and fetching every new
//!   segment, counting bytes and anything but 200), then four ingests at once.
//! - Memory: the process's VmRSS before the push and its highest sample during it (the
//!   rise is the ingest's), and VmHWM.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use livestream::auth::Role;
use serde_json::{Value, json};

use crate::Row;

/// Length of each steady measurement.
const STEADY: Duration = Duration::from_secs(20);
/// Segments listed this soon after the first are start-up, not steady push.
const SETTLE: Duration = Duration::from_secs(2);
/// How often the delay probe reads the playlist.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
const PLAYERS: usize = 50;
const PLAYER_INTERVAL: Duration = Duration::from_millis(500);
/// Segments back from the newest a player starts at (web/player.js's `EDGE_SEGMENTS`).
const EDGE_SEGMENTS: u64 = 2;
/// Upper bound of every wait for the stack.
const WAIT: Duration = Duration::from_secs(30);
const INGESTS_AT_ONCE: usize = 4;
const GOALS: (&str, &str) = (
    "< 3 s (IVS low latency 2-5 s, Owncast HLS 10-20 s)",
    "< 5 % of a core per 6 Mbps ingest",
);

/// utime + stime from a `/proc/…/stat` file, in seconds.
fn cpu_seconds(stat: &std::path::Path) -> f64 {
    let ticks_per_second = 100.0;
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / ticks_per_second
}

/// A field of `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// ffmpeg pushing the 6 Mbps 720p30 test pattern with a keyframe every `gop` frames;
/// killed when dropped.
struct Encoder {
    child: Child,
    spawned: Instant,
}

impl Encoder {
    fn push(url: &str, gop: u32) -> Self {
        let spawned = Instant::now();
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune"])
            .args(["zerolatency", "-pix_fmt", "yuv420p", "-g", &gop.to_string()])
            .args(["-b:v", "6M", "-maxrate", "6M", "-bufsize", "3M"])
            .args(["-c:a", "aac", "-b:a", "128k", "-t", "600", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts");
        Self { child, spawned }
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(std::path::Path::new(&format!(
            "/proc/{}/stat",
            self.child.id()
        )))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A segment as a playlist lists it.
struct Listed {
    sequence: u64,
    /// Its init segment's URI.
    map: String,
    uri: String,
    duration: f64,
    /// When its first frame arrived at the ingest.
    program_date_time: DateTime<Utc>,
}

fn parse_playlist(text: &str) -> Vec<Listed> {
    let (mut map, mut duration, mut program_date_time) = (String::new(), 0.0, None);
    let mut listed = Vec::new();
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            map = uri.trim_end_matches('"').to_string();
        } else if let Some(at) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            program_date_time = DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|t| t.with_timezone(&Utc));
        } else if let Some(seconds) = line.strip_prefix("#EXTINF:") {
            duration = seconds.trim_end_matches(',').parse().unwrap_or(0.0);
        } else if !line.starts_with('#') && !line.is_empty() {
            let sequence = line
                .strip_prefix("seg-")
                .and_then(|s| s.split(".m4s").next()?.parse().ok());
            if let (Some(sequence), Some(at)) = (sequence, program_date_time.take()) {
                listed.push(Listed {
                    sequence,
                    map: map.clone(),
                    uri: line.to_string(),
                    duration,
                    program_date_time: at,
                });
            }
        }
    }
    listed
}

/// `uri` of a playlist at `playlist_url`.
fn resolve(playlist_url: &str, uri: &str) -> String {
    let path = playlist_url.split('?').next().unwrap_or(playlist_url);
    let dir = path.rsplit_once('/').map_or(path, |(dir, _)| dir);
    format!("{dir}/{uri}")
}

/// The playlist's segments, or the status it was refused with (0: no answer).
async fn playlist(client: &reqwest::Client, url: &str) -> Result<Vec<Listed>, u16> {
    let response = client.get(url).send().await.map_err(|_| 0u16)?;
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let text = response.text().await.map_err(|_| 0u16)?;
    Ok(parse_playlist(&text))
}

/// A fresh local stack on its own runtime, with a course of the teacher's.
struct Stack {
    runtime: tokio::runtime::Runtime,
    stack: local::LocalStack,
    http: reqwest::Client,
    teacher: String,
    course_id: String,
    _data: tempfile::TempDir,
}

/// A public stream the teacher created: where to push and where to play.
struct Channel {
    stream_id: String,
    push_url: String,
    playlist_url: String,
}

impl Stack {
    async fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stack")
            .enable_all()
            .build()
            .unwrap();
        // Data on disk, as `cargo run -p local` keeps it.
        let data = tempfile::tempdir().unwrap();
        let config = local::Config::on_free_ports(Some(data.path().to_path_buf()));
        let stack = runtime
            .spawn(local::LocalStack::start(config))
            .await
            .unwrap()
            .unwrap();
        let mut this = Self {
            runtime,
            stack,
            http: reqwest::Client::new(),
            teacher: local::dev_token(local::LOCAL_JWT_SECRET, "teacher-1", Role::Teacher, "T", 1),
            course_id: String::new(),
            _data: data,
        };
        let teacher = this.teacher.clone();
        let course = this
            .call(
                "POST",
                "/api/courses",
                &teacher,
                Some(json!({"title": "Video"})),
            )
            .await;
        this.course_id = course["id"].as_str().unwrap().to_string();
        this
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.stack.http_url),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// A public 720p30 6 Mbps stream, its ingest (as the teacher reads it) and its
    /// playback URL (as a student gets it).
    async fn channel(&self, title: &str) -> Channel {
        let stream = self
            .call(
                "POST",
                "/api/livestream",
                &self.teacher,
                Some(json!({
                    "title": title, "course_id": self.course_id, "is_public": true,
                    "quality_settings": { "resolution": "720p", "frame_rate": 30, "bitrate_kbps": 6000 }
                })),
            )
            .await;
        let stream_id = stream["id"].as_str().unwrap().to_string();
        let ingest = self
            .call(
                "GET",
                &format!("/api/livestream/{stream_id}/ingest"),
                &self.teacher,
                None,
            )
            .await;
        let student = local::dev_token(local::LOCAL_JWT_SECRET, "student-1", Role::Student, "S", 1);
        let playback = self
            .call(
                "GET",
                &format!("/api/livestream/{stream_id}/playback"),
                &student,
                None,
            )
            .await;
        Channel {
            push_url: format!(
                "{}{}",
                ingest["ingest_url"].as_str().unwrap(),
                ingest["stream_key"].as_str().unwrap()
            ),
            playlist_url: playback["playback_url"].as_str().unwrap().to_string(),
            stream_id,
        }
    }

    /// What the ingest measured of the channel's push (`GET …/ingest`'s `health`).
    async fn health(&self, channel: &Channel) -> Value {
        let path = format!("/api/livestream/{}/ingest", channel.stream_id);
        self.call("GET", &path, &self.teacher, None).await["health"].clone()
    }

    async fn stop(self) {
        self.runtime.spawn(self.stack.shutdown()).await.unwrap();
        self.runtime.shutdown_background();
    }
}

/// Waits until the playlist lists a segment; how long after the encoder's spawn.
async fn first_listed(client: &reqwest::Client, channel: &Channel, encoder: &Encoder) -> Duration {
    loop {
        if playlist(client, &channel.playlist_url)
            .await
            .is_ok_and(|l| !l.is_empty())
        {
            return encoder.spawned.elapsed();
        }
        assert!(
            encoder.spawned.elapsed() < WAIT,
            "no segment listed {WAIT:?} after the push started"
        );
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Per steady segment: L, listed minus its first frame's arrival; what a player two
/// segments back sees, listed minus the previous segment's first frame; its duration.
#[derive(Default)]
struct Delays {
    listed: Vec<Duration>,
    shown: Vec<Duration>,
    durations: Vec<f64>,
}

/// Polls the playlist every 20 ms for `SETTLE` + `STEADY`, noting when each segment
/// first appears.
async fn listing_delays(client: &reqwest::Client, channel: &Channel) -> Delays {
    let started = Instant::now();
    let mut seen = HashSet::new();
    let mut first_frames = BTreeMap::new();
    let mut delays = Delays::default();
    while started.elapsed() < SETTLE + STEADY {
        if let Ok(listed) = playlist(client, &channel.playlist_url).await {
            let now = Utc::now();
            for segment in listed {
                first_frames.insert(segment.sequence, segment.program_date_time);
                if !seen.insert(segment.sequence) || started.elapsed() < SETTLE {
                    continue;
                }
                let since = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default();
                delays.listed.push(since(segment.program_date_time));
                delays.durations.push(segment.duration);
                let previous = segment.sequence.checked_sub(1);
                if let Some(previous) = previous.and_then(|p| first_frames.get(&p)) {
                    delays.shown.push(since(*previous));
                }
            }
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    delays
}

/// What the players got.
#[derive(Default)]
struct Served {
    bytes: AtomicU64,
    playlists: AtomicU64,
    segments: AtomicU64,
    /// Anything but 200, or no answer.
    refused: AtomicU64,
    /// How long each media segment took to fetch.
    fetches: Mutex<Vec<Duration>>,
}

impl Served {
    async fn get(&self, client: &reqwest::Client, url: &str) -> Option<usize> {
        let response = match client.get(url).send().await {
            Ok(r) if r.status() == 200 => r,
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let Ok(body) = response.bytes().await else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        Some(body.len())
    }
}

/// A player of its own client: polls the playlist every 500 ms until `until`, starts
/// two segments back from the newest and fetches every new segment (and its init).
async fn player(url: String, delay: Duration, until: Instant, served: Arc<Served>) {
    let client = reqwest::Client::new();
    tokio::time::sleep(delay).await;
    let mut ticker = tokio::time::interval(PLAYER_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut next, mut init) = (None, String::new());
    while Instant::now() < until {
        ticker.tick().await;
        let listed = match playlist(&client, &url).await {
            Ok(listed) => listed,
            Err(_) => {
                served.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        served.playlists.fetch_add(1, Ordering::Relaxed);
        let Some(newest) = listed.last().map(|s| s.sequence) else {
            continue;
        };
        let from = *next.get_or_insert((newest + 1).saturating_sub(EDGE_SEGMENTS));
        for segment in listed.iter().filter(|s| s.sequence >= from) {
            if segment.map != init {
                served.get(&client, &resolve(&url, &segment.map)).await;
                init.clone_from(&segment.map);
            }
            let started = Instant::now();
            if served
                .get(&client, &resolve(&url, &segment.uri))
                .await
                .is_some()
            {
                served.segments.fetch_add(1, Ordering::Relaxed);
                served.fetches.lock().unwrap().push(started.elapsed());
            }
            next = Some(segment.sequence + 1);
        }
    }
}

/// The stack's CPU, the encoders' and the highest RSS over a window.
struct Usage {
    wall: f64,
    stack_cpu: f64,
    encoder_cpu: f64,
    rss_max_kib: u64,
}

impl Usage {
    /// Percent of one core.
    fn stack(&self) -> f64 {
        100.0 * self.stack_cpu / self.wall
    }

    fn encoders(&self) -> f64 {
        100.0 * self.encoder_cpu / self.wall
    }
}

/// Samples RSS every 500 ms for `STEADY` while whatever runs runs.
async fn usage(encoders: &[Encoder]) -> Usage {
    let encoder_cpu = || encoders.iter().map(Encoder::cpu_seconds).sum::<f64>();
    let (stack_before, encoders_before) = (crate::live::stack_cpu_seconds(), encoder_cpu());
    let started = Instant::now();
    let mut rss_max_kib = 0;
    while started.elapsed() < STEADY {
        rss_max_kib = rss_max_kib.max(status_kib("VmRSS:"));
        tokio::time::sleep(
            Duration::from_millis(500).min(STEADY.saturating_sub(started.elapsed())),
        )
        .await;
    }
    Usage {
        wall: started.elapsed().as_secs_f64(),
        stack_cpu: crate::live::stack_cpu_seconds() - stack_before,
        encoder_cpu: encoder_cpu() - encoders_before,
        rss_max_kib,
    }
}

/// One ingest on a fresh stack: its delays; with `load`, then the stack's CPU and
/// memory with nobody watching and with 50 players.
struct Single {
    gop: u32,
    first_listed: Duration,
    delays: Delays,
    health: Value,
    load: Option<Load>,
}

struct Load {
    /// The stack with the stream created and nothing pushed: its own background work.
    idle: Usage,
    rss_before_kib: u64,
    quiet: Usage,
    watched: Usage,
    served: Arc<Served>,
    served_seconds: f64,
}

async fn single(gop: u32, load: bool) -> Single {
    let stack = Stack::start().await;
    let channel = stack.channel(&format!("GOP {gop}")).await;
    let client = reqwest::Client::new();
    // Let the start-up's allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = if load { Some(usage(&[]).await) } else { None };
    let rss_before_kib = status_kib("VmRSS:");
    let encoder = Encoder::push(&channel.push_url, gop);
    let first_listed = first_listed(&client, &channel, &encoder).await;
    let delays = listing_delays(&client, &channel).await;
    let load = if let Some(idle) = idle {
        let quiet = usage(std::slice::from_ref(&encoder)).await;
        let served = Arc::new(Served::default());
        let until = Instant::now() + STEADY;
        let players: Vec<_> = (0..PLAYERS)
            .map(|i| {
                // Spread over the poll interval, as players that joined at different times.
                let delay = PLAYER_INTERVAL * i as u32 / PLAYERS as u32;
                tokio::spawn(player(
                    channel.playlist_url.clone(),
                    delay,
                    until,
                    served.clone(),
                ))
            })
            .collect();
        let watched = usage(std::slice::from_ref(&encoder)).await;
        for player in players {
            let _ = tokio::time::timeout(WAIT, player).await;
        }
        Some(Load {
            idle,
            rss_before_kib,
            quiet,
            watched,
            served,
            served_seconds: STEADY.as_secs_f64(),
        })
    } else {
        None
    };
    let health = stack.health(&channel).await;
    drop(encoder);
    stack.stop().await;
    Single {
        gop,
        first_listed,
        delays,
        health,
        load,
    }
}

/// Four ingests at once on a fresh stack, nobody watching.
struct Several {
    rss_before_kib: u64,
    usage: Usage,
    bitrate_kbps: f64,
}

async fn several() -> Several {
    let stack = Stack::start().await;
    let mut channels = Vec::new();
    for i in 0..INGESTS_AT_ONCE {
        channels.push(stack.channel(&format!("Class {i}")).await);
    }
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = status_kib("VmRSS:");
    let encoders: Vec<Encoder> = channels
        .iter()
        .map(|c| Encoder::push(&c.push_url, 30))
        .collect();
    for (channel, encoder) in channels.iter().zip(&encoders) {
        first_listed(&client, channel, encoder).await;
    }
    tokio::time::sleep(SETTLE).await;
    let usage = usage(&encoders).await;
    let mut bitrate_kbps = 0.0;
    for channel in &channels {
        bitrate_kbps += stack.health(channel).await["bitrate_kbps"]
            .as_f64()
            .unwrap_or(0.0);
    }
    drop(encoders);
    stack.stop().await;
    Several {
        rss_before_kib,
        usage,
        bitrate_kbps,
    }
}

fn sorted(durations: &[Duration]) -> Vec<Duration> {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted
}

fn quantile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64()
}

/// `p50 / p99 / max s`.
fn spread(durations: &[Duration]) -> String {
    let s = sorted(durations);
    format!(
        "{:.2} / {:.2} / {:.2} s",
        quantile(&s, 0.5),
        quantile(&s, 0.99),
        quantile(&s, 1.0)
    )
}

fn line(figure: &str, measured: &str, goal: &str) -> String {
    format!("| {figure:<62} | {measured:<52} | {goal:<50} |")
}

/// Rows of the delays (per segment, ms) for the main table, and the video table of
/// every figure as notes.
pub async fn rows() -> (Vec<Row>, Vec<String>) {
    if !ffmpeg_available() {
        let message = "video: skipped, ffmpeg is not installed (apt-get install ffmpeg)";
        eprintln!("{message}");
        return (Vec::new(), vec![message.into()]);
    }
    println!("video: pushing with ffmpeg, about 2 minutes...");
    let gop_1s = single(30, true).await;
    let gop_2s = single(60, false).await;
    let several = several().await;

    let mut rows = Vec::new();
    let mut notes = vec![
        String::new(),
        format!(
            "video through the local stack: ffmpeg pushing 1280x720 30 fps, 6 Mbps x264 ultrafast zerolatency + AAC 128k over RTMP on loopback, {}",
            Utc::now().format("%Y-%m-%d")
        ),
        line("figure", "measured", "goal"),
        format!("|{:-<64}|{:-<54}|{:-<52}|", "", "", ""),
    ];
    for run in [&gop_1s, &gop_2s] {
        let gop = format!("-g {}", run.gop);
        let d = &run.delays;
        let mean_duration = d.durations.iter().sum::<f64>() / d.durations.len().max(1) as f64;
        rows.extend([
            Row {
                name: format!("video {gop}: ffmpeg spawn -> first segment listed"),
                ops: 1,
                elapsed: run.first_listed,
                latencies: vec![run.first_listed],
            },
            Row {
                name: format!("video {gop}: segment's first frame -> listed (L)"),
                ops: d.listed.len(),
                elapsed: STEADY,
                latencies: d.listed.clone(),
            },
            Row {
                name: format!("video {gop}: frame -> player 2 segments back (L + d)"),
                ops: d.shown.len(),
                elapsed: STEADY,
                latencies: d.shown.clone(),
            },
        ]);
        notes.extend([
            line(
                &format!("{gop}: ffmpeg spawn -> first segment listed"),
                &format!("{:.2} s", run.first_listed.as_secs_f64()),
                "",
            ),
            line(
                &format!("{gop}: segment's first frame -> listed (L) p50/p99/max"),
                &format!(
                    "{} ({} segments of {mean_duration:.2} s)",
                    spread(&d.listed),
                    d.listed.len()
                ),
                "",
            ),
            line(
                &format!("{gop}: L minus the segment's duration (processing + poll)"),
                &spread(
                    &d.listed
                        .iter()
                        .zip(&d.durations)
                        .map(|(l, d)| l.saturating_sub(Duration::from_secs_f64(*d)))
                        .collect::<Vec<_>>(),
                ),
                "",
            ),
            line(
                &format!("{gop}: frame -> shown, player 2 segments back (L + d)"),
                &spread(&d.shown),
                GOALS.0,
            ),
        ]);
    }
    if let Some(load) = &gop_1s.load {
        let mbps = gop_1s.health["bitrate_kbps"].as_f64().unwrap_or(0.0) / 1e3;
        let served = &load.served;
        let fetches = sorted(&served.fetches.lock().unwrap());
        rows.push(Row {
            name: format!("video: {PLAYERS} HLS players, media segment GET"),
            ops: fetches.len(),
            elapsed: Duration::from_secs_f64(load.served_seconds),
            latencies: fetches,
        });
        notes.extend([
            line(
                "stack CPU, idle (stream created, nothing pushed)",
                &format!("{:.1} % of a core", load.idle.stack()),
                "",
            ),
            line(
                &format!("stack CPU, 1 ingest at {mbps:.2} Mbps, nobody watching"),
                &format!(
                    "{:.1} % of a core, {:+.1} over idle (encoder {:.0} %)",
                    load.quiet.stack(),
                    load.quiet.stack() - load.idle.stack(),
                    load.quiet.encoders()
                ),
                GOALS.1,
            ),
            line(
                &format!("stack CPU, 1 ingest, {PLAYERS} HLS players"),
                &format!(
                    "{:.1} % of a core, {:.1} Mbit/s served",
                    load.watched.stack(),
                    served.bytes.load(Ordering::Relaxed) as f64 * 8.0 / 1e6 / load.served_seconds
                ),
                "",
            ),
            line(
                &format!("{PLAYERS} HLS players: playlists / segments / not 200"),
                &format!(
                    "{} / {} / {}",
                    served.playlists.load(Ordering::Relaxed),
                    served.segments.load(Ordering::Relaxed),
                    served.refused.load(Ordering::Relaxed)
                ),
                "",
            ),
            line(
                "RSS before the push / during it (max) / rise, 1 ingest",
                &format!(
                    "{:.1} / {:.1} MiB / +{:.1} MiB",
                    mib(load.rss_before_kib),
                    mib(load.quiet.rss_max_kib),
                    mib(load.quiet.rss_max_kib.saturating_sub(load.rss_before_kib))
                ),
                "",
            ),
            line(
                &format!("RSS with {PLAYERS} HLS players (max)"),
                &format!("{:.1} MiB", mib(load.watched.rss_max_kib)),
                "",
            ),
        ]);
    }
    let n = INGESTS_AT_ONCE as f64;
    let rise = mib(several
        .usage
        .rss_max_kib
        .saturating_sub(several.rss_before_kib));
    notes.extend([
        line(
            &format!(
                "stack CPU, {INGESTS_AT_ONCE} ingests at once ({:.2} Mbps in all)",
                several.bitrate_kbps / 1e3
            ),
            &format!(
                "{:.1} % of a core, {:.1} % per ingest (encoders {:.0} %)",
                several.usage.stack(),
                several.usage.stack() / n,
                several.usage.encoders()
            ),
            GOALS.1,
        ),
        line(
            &format!("RSS before / during (max) / rise, {INGESTS_AT_ONCE} ingests"),
            &format!(
                "{:.1} / {:.1} MiB / +{rise:.1} MiB, {:.1} per ingest",
                mib(several.rss_before_kib),
                mib(several.usage.rss_max_kib),
                rise / n
            ),
            "",
        ),
        line(
            "VmHWM, the process's peak so far",
            &format!("{:.1} MiB", mib(status_kib("VmHWM:"))),
            "",
        ),
        "L: the wall clock when the segment was first listed (playlist polled every 20 ms) minus its #EXT-X-PROGRAM-DATE-TIME (its first frame's arrival at the ingest); a segment is listed once the keyframe after it arrives, so L holds its duration d.".into(),
        "L + d: a player starting two segments back from the newest (web/player.js) starts on segment N-1 when N is listed, so shows each frame listed(N) - arrival(first frame of N-1) = L(N) + d(N-1) after it arrived, measured per segment; its own poll (up to half a target duration at join), fetch and decode come on top.".into(),
        format!("CPU: the stack's threads over {} s (ffmpeg is a separate process, not counted); idle is the stack's own background work (change-stream poller, sweeps) before the push, and per ingest at 4 is all of the stack's CPU shared out; players: each its own reqwest client polling every 500 ms, fetching each new segment.", STEADY.as_secs()),
        "RSS: the whole process's (clients included) before the push and its highest 500 ms sample during the quiet window; a channel keeps its last 6 segments (about 4.5 MB at 6 Mbps and 1 s segments). The first ingest's rise also holds one-time costs (first session, the stack threads' heaps); the four ingests start from a baseline after two earlier stacks stopped, whose freed memory the allocator may still hold.".into(),
    ]);
    (rows, notes)
}
