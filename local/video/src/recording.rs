//! Recording a channel as Amazon IVS records to S3: one recording per broadcast, its
//! reconnects within the window continued in it, written to a bucket's directory in
//! IVS's layout:
//!
//! ```text
//! <bucket>/ivs/v1/<account>/<channel id>/<year>/<month>/<day>/<hour>/<minute>/<recording id>/
//!   events/recording-started.json, events/recording-ended.json
//!   media/hls/master.m3u8, media/hls/<rendition>/playlist.m3u8, init-<n>.mp4, <n>.m4s
//!   media/thumbnails/<rendition>/thumb<n>.jpg
//! ```
//!
//! The rendition playlist is rewritten whole (aside, then renamed) after each complete
//! segment, so a process killed at any moment leaves a recording that plays up to its
//! last complete segment; [`finish_abandoned`] ends such recordings at the next start.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::events::IngestEvent;
use crate::health::Tracks;
use crate::registry::lock;
use crate::segmenter::Segment;

const HLS_PATH: &str = "media/hls";
const MASTER_PLAYLIST: &str = "master.m3u8";
const RENDITION_PLAYLIST: &str = "playlist.m3u8";
const THUMBNAILS_PATH: &str = "media/thumbnails";
const STARTED_JSON: &str = "events/recording-started.json";
const ENDED_JSON: &str = "events/recording-ended.json";
/// A playlist comment naming the stream (publish session) whose segments follow: how a
/// recording finished after a crash still knows its streams. Players skip comments.
const STREAM_COMMENT: &str = "# stream-id: ";

/// Where and how a channel records: its recording configuration, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingTarget {
    /// The bucket's directory: object keys are paths under it.
    pub bucket_root: PathBuf,
    /// The bucket's name, as the events name it.
    pub bucket_name: String,
    /// The account part of the key prefix.
    pub account_id: String,
    /// Written into the recording's metadata files.
    pub channel_arn: String,
    /// A push that starts again within this long after the last one ended continues its
    /// recording (`recordingReconnectWindowSeconds`).
    pub reconnect_window: Duration,
    /// One thumbnail from the first segment, then one per this much media; `None`: none.
    pub thumbnail_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Recording,
    /// Its last push ended: it ends when the reconnect window passes without another.
    Paused,
    Finished,
}

enum Job {
    Init {
        stream_id: String,
        data: Bytes,
    },
    Segment {
        seconds: f64,
        program_date_time: DateTime<Utc>,
        data: Bytes,
    },
    Pause {
        window: Duration,
    },
    Finish,
}

/// A channel's recording in progress: the registry's handle on its writer thread.
pub(crate) struct Recording {
    pub(crate) recording_id: String,
    pub(crate) key_prefix: String,
    /// The stream whose media it is recording now.
    stream_id: String,
    /// Shared with the writer, which ends a paused recording when its window passes:
    /// resuming and ending are decided under this lock, so they cannot both happen.
    phase: Arc<Mutex<Phase>>,
    jobs: mpsc::Sender<Job>,
    reconnect_window: Duration,
}

impl Recording {
    /// Starts a recording of `channel_id` with the stream `stream_id`, whose first init
    /// segment has `tracks`: creates its prefix and hands the writing to a thread of its
    /// own, off the ingest path. `Err` says why it cannot record.
    pub(crate) fn start(
        target: &RecordingTarget,
        channel_id: &str,
        stream_id: &str,
        tracks: &Tracks,
        events: UnboundedSender<IngestEvent>,
    ) -> Result<Self, String> {
        let started_at = Utc::now();
        let recording_id = ulid::Ulid::generate().to_string();
        let key_prefix = key_prefix(&target.account_id, channel_id, started_at, &recording_id);
        let dir = target.bucket_root.join(&key_prefix);
        let rendition = Rendition::of(tracks);
        for sub in ["events", &format!("{HLS_PATH}/{}", rendition.path)] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let writer = Writer {
            dir,
            channel_id: channel_id.to_owned(),
            channel_arn: target.channel_arn.clone(),
            bucket_name: target.bucket_name.clone(),
            key_prefix: key_prefix.clone(),
            recording_id: recording_id.clone(),
            started_at,
            rendition,
            entries: Vec::new(),
            inits: 0,
            segments: 0,
            stream_ids: Vec::new(),
            duration_seconds: 0.0,
            peak_bandwidth: 0,
            thumbnails: target.thumbnail_interval.map(Thumbnails::new),
            last_init: Bytes::new(),
            events,
        };
        writer.write_started().map_err(|e| format!("{e}"))?;
        let phase = Arc::new(Mutex::new(Phase::Recording));
        let (jobs, queue) = mpsc::channel();
        let writer_phase = Arc::clone(&phase);
        std::thread::Builder::new()
            .name("local-video-recording".into())
            .spawn(move || writer.run(queue, &writer_phase))
            .map_err(|e| format!("starting the recording writer: {e}"))?;
        Ok(Self {
            recording_id,
            key_prefix,
            stream_id: stream_id.to_owned(),
            phase,
            jobs,
            reconnect_window: target.reconnect_window,
        })
    }

    /// Whether `stream_id` goes on in this recording: the stream it records, or a new
    /// one within the reconnect window (which then resumes it).
    pub(crate) fn continue_with(&mut self, stream_id: &str) -> bool {
        let mut phase = lock(&self.phase);
        match *phase {
            Phase::Finished => false,
            Phase::Recording if self.stream_id == stream_id => true,
            Phase::Recording | Phase::Paused => {
                *phase = Phase::Recording;
                self.stream_id = stream_id.to_owned();
                true
            }
        }
    }

    pub(crate) fn write_init(&self, data: &Bytes) {
        let _ = self.jobs.send(Job::Init {
            stream_id: self.stream_id.clone(),
            data: data.clone(),
        });
    }

    pub(crate) fn write_segment(&self, segment: &Segment) {
        let _ = self.jobs.send(Job::Segment {
            seconds: segment.duration.as_secs_f64(),
            program_date_time: segment.program_date_time,
            data: segment.data.clone(),
        });
    }

    /// Its push ended: it ends unless another push resumes it within its reconnect
    /// window.
    pub(crate) fn pause(&self) {
        let mut phase = lock(&self.phase);
        if *phase == Phase::Recording {
            *phase = Phase::Paused;
            let _ = self.jobs.send(Job::Pause {
                window: self.reconnect_window,
            });
        }
    }

    /// Ends it now (its channel was stopped or deleted).
    pub(crate) fn finish(&self) {
        let mut phase = lock(&self.phase);
        if *phase != Phase::Finished {
            *phase = Phase::Finished;
            let _ = self.jobs.send(Job::Finish);
        }
    }
}

/// `ivs/v1/<account>/<channel id>/<y>/<m>/<d>/<h>/<min>/<recording id>`, the date
/// unpadded as IVS writes it.
fn key_prefix(account: &str, channel_id: &str, at: DateTime<Utc>, recording_id: &str) -> String {
    format!(
        "ivs/v1/{account}/{}/{}/{}/{}/{}/{}/{recording_id}",
        path_safe(channel_id),
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// The one rendition recorded: the pushed video as it came (no transcoding).
#[derive(Debug, Clone)]
struct Rendition {
    path: String,
    width: u32,
    height: u32,
    codecs: String,
    frame_rate: f64,
}

impl Rendition {
    fn of(tracks: &Tracks) -> Self {
        let fps = tracks.frame_rate.round() as u32;
        Self {
            // IVS names renditions `<height>p<fps>`.
            path: if fps > 0 {
                format!("{}p{fps}", tracks.height)
            } else {
                format!("{}p", tracks.height)
            },
            width: tracks.width,
            height: tracks.height,
            codecs: format!("{},{}", tracks.video_codec, tracks.audio_codec),
            frame_rate: tracks.frame_rate,
        }
    }

    fn json(&self) -> Value {
        json!({
            "path": self.path,
            "playlist": RENDITION_PLAYLIST,
            "resolution_height": self.height,
            "resolution_width": self.width,
        })
    }
}

/// A line group of the rendition playlist.
enum Entry {
    Discontinuity,
    Map(u32),
    Stream(String),
    Segment {
        number: u64,
        seconds: f64,
        program_date_time: DateTime<Utc>,
    },
}

struct Thumbnails {
    interval: Duration,
    next: u32,
    /// Media since the last thumbnail; `None` before the first.
    since_last: Option<f64>,
}

impl Thumbnails {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: 0,
            since_last: None,
        }
    }

    /// Whether the segment after `since_last` gets a thumbnail; counts its media.
    fn due(&mut self, seconds: f64) -> bool {
        let due = self
            .since_last
            .is_none_or(|since| since >= self.interval.as_secs_f64());
        self.since_last = Some(if due {
            seconds
        } else {
            self.since_last.unwrap_or(0.0) + seconds
        });
        due
    }
}

struct Writer {
    dir: PathBuf,
    channel_id: String,
    channel_arn: String,
    bucket_name: String,
    key_prefix: String,
    recording_id: String,
    started_at: DateTime<Utc>,
    rendition: Rendition,
    entries: Vec<Entry>,
    inits: u32,
    segments: u64,
    stream_ids: Vec<String>,
    duration_seconds: f64,
    peak_bandwidth: u64,
    thumbnails: Option<Thumbnails>,
    last_init: Bytes,
    events: UnboundedSender<IngestEvent>,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>, phase: &Mutex<Phase>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let job = match deadline {
                None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => queue.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            let result = match job {
                Ok(Job::Init { stream_id, data }) => {
                    deadline = None;
                    self.add_init(stream_id, data)
                }
                Ok(Job::Segment {
                    seconds,
                    program_date_time,
                    data,
                }) => self.add_segment(seconds, program_date_time, &data),
                Ok(Job::Pause { window }) => {
                    deadline = Some(Instant::now() + window);
                    Ok(())
                }
                Ok(Job::Finish) => return self.finish(),
                Err(RecvTimeoutError::Timeout) => {
                    let mut phase = lock(phase);
                    if *phase == Phase::Paused {
                        *phase = Phase::Finished;
                        drop(phase);
                        return self.finish();
                    }
                    // Resumed: its init is on the way.
                    deadline = None;
                    Ok(())
                }
                // The ingest is gone (the stack stopping): what is written stays, and
                // the next start finishes it.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if let Err(error) = result {
                tracing::error!(dir = %self.dir.display(), %error, "recording write failed");
            }
        }
    }

    fn rendition_dir(&self) -> PathBuf {
        self.dir.join(HLS_PATH).join(&self.rendition.path)
    }

    fn add_init(&mut self, stream_id: String, data: Bytes) -> std::io::Result<()> {
        self.inits += 1;
        let number = self.inits;
        std::fs::write(
            self.rendition_dir().join(format!("init-{number}.mp4")),
            &data,
        )?;
        if self.segments > 0 {
            self.entries.push(Entry::Discontinuity);
        }
        if self.stream_ids.last() != Some(&stream_id) {
            self.stream_ids.push(stream_id.clone());
            self.entries.push(Entry::Stream(stream_id));
        }
        self.entries.push(Entry::Map(number));
        self.last_init = data;
        Ok(())
    }

    fn add_segment(
        &mut self,
        seconds: f64,
        program_date_time: DateTime<Utc>,
        data: &Bytes,
    ) -> std::io::Result<()> {
        if self.inits == 0 {
            return Ok(());
        }
        let number = self.segments;
        self.segments += 1;
        let name = format!("{number}.m4s");
        std::fs::write(self.rendition_dir().join(&name), data)?;
        self.entries.push(Entry::Segment {
            number,
            seconds,
            program_date_time,
        });
        self.duration_seconds += seconds;
        let bandwidth = if seconds > 0.0 {
            (data.len() as f64 * 8.0 / seconds) as u64
        } else {
            0
        };
        let first = number == 0;
        self.peak_bandwidth = self.peak_bandwidth.max(bandwidth);
        replace_file(
            &self.rendition_dir().join(RENDITION_PLAYLIST),
            self.playlist(false).as_bytes(),
        )?;
        if first {
            self.write_master()?;
        }
        if self.thumbnails.as_mut().is_some_and(|t| t.due(seconds)) {
            self.thumbnail(data);
        }
        Ok(())
    }

    fn playlist(&self, ended: bool) -> String {
        let target = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Segment { seconds, .. } => Some(seconds.round() as u64),
                _ => None,
            })
            .max()
            .unwrap_or(1)
            .max(1);
        let kind = if ended { "VOD" } else { "EVENT" };
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        );
        for entry in &self.entries {
            // Writing to a String cannot fail.
            let _ = match entry {
                Entry::Discontinuity => writeln!(text, "#EXT-X-DISCONTINUITY"),
                Entry::Map(number) => writeln!(text, "#EXT-X-MAP:URI=\"init-{number}.mp4\""),
                Entry::Stream(id) => writeln!(text, "{STREAM_COMMENT}{id}"),
                Entry::Segment {
                    number,
                    seconds,
                    program_date_time,
                } => write!(
                    text,
                    "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{seconds:.3},\n{number}.m4s\n",
                    program_date_time.to_rfc3339_opts(SecondsFormat::Millis, true)
                ),
            };
        }
        if ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        text
    }

    fn write_master(&self) -> std::io::Result<()> {
        let r = &self.rendition;
        let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        let _ = write!(
            text,
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\"",
            self.peak_bandwidth.max(1),
            r.width,
            r.height,
            r.codecs
        );
        if r.frame_rate > 0.0 {
            let _ = write!(text, ",FRAME-RATE={:.3}", r.frame_rate);
        }
        let _ = write!(text, "\n{}/{RENDITION_PLAYLIST}\n", r.path);
        replace_file(
            &self.dir.join(HLS_PATH).join(MASTER_PLAYLIST),
            text.as_bytes(),
        )
    }

    fn write_started(&self) -> std::io::Result<()> {
        let mut media = json!({
            "hls": {
                "path": HLS_PATH,
                "playlist": MASTER_PLAYLIST,
                "renditions": [self.rendition.json()],
            },
        });
        if self.thumbnails.is_some() {
            media["thumbnails"] = self.thumbnails_json();
        }
        let started = json!({
            "version": "v1",
            "channel_arn": self.channel_arn,
            "recording_started_at": self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "recording_status": "RECORDING_STARTED",
            "media": media,
        });
        replace_file(&self.dir.join(STARTED_JSON), started.to_string().as_bytes())
    }

    fn thumbnails_json(&self) -> Value {
        json!({
            "path": THUMBNAILS_PATH,
            "resolution_height": self.rendition.height,
            "resolution_width": self.rendition.width,
        })
    }

    /// A JPEG of the segment's first frame, made by ffmpeg on a thread of its own.
    fn thumbnail(&mut self, segment: &Bytes) {
        let Some(thumbnails) = self.thumbnails.as_mut() else {
            return;
        };
        if !ffmpeg_available() {
            return;
        }
        let dir = self.dir.join(THUMBNAILS_PATH).join(&self.rendition.path);
        let path = dir.join(format!("thumb{}.jpg", thumbnails.next));
        thumbnails.next += 1;
        let mut media = self.last_init.to_vec();
        media.extend_from_slice(segment);
        let spawned = std::thread::Builder::new()
            .name("local-video-thumbnail".into())
            .spawn(move || {
                if let Err(error) = make_thumbnail(&dir, &path, &media) {
                    tracing::warn!(path = %path.display(), %error, "thumbnail failed");
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thumbnail");
        }
    }

    fn finish(mut self) {
        let ended_at = Utc::now();
        // A pending partial entry list ends with what was completely written.
        let result = replace_file(
            &self.rendition_dir().join(RENDITION_PLAYLIST),
            self.playlist(true).as_bytes(),
        )
        .and_then(|()| {
            if self.segments > 0 {
                self.write_master()
            } else {
                Ok(())
            }
        })
        .and_then(|()| self.write_ended(ended_at));
        let stream_id = self.stream_ids.last().cloned().unwrap_or_default();
        let duration_ms = (self.duration_seconds * 1000.0).round() as u64;
        let event = match result {
            Ok(()) => IngestEvent::RecordingEnd {
                channel_id: std::mem::take(&mut self.channel_id),
                session_id: stream_id,
                at: ended_at,
                recording_id: self.recording_id.clone(),
                bucket_name: self.bucket_name.clone(),
                key_prefix: self.key_prefix.clone(),
                duration_ms,
                stream_ids: std::mem::take(&mut self.stream_ids),
            },
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "finishing the recording failed");
                IngestEvent::RecordingEndFailure {
                    channel_id: std::mem::take(&mut self.channel_id),
                    session_id: stream_id,
                    at: ended_at,
                    recording_id: self.recording_id.clone(),
                    bucket_name: self.bucket_name.clone(),
                    key_prefix: self.key_prefix.clone(),
                    reason: error.to_string(),
                }
            }
        };
        tracing::info!(
            recording_id = self.recording_id,
            duration_ms,
            "recording ended"
        );
        let _ = self.events.send(event);
    }

    fn write_ended(&self, ended_at: DateTime<Utc>) -> std::io::Result<()> {
        let mut media = json!({
            "hls": {
                "duration_ms": (self.duration_seconds * 1000.0).round() as u64,
                "path": HLS_PATH,
                "playlist": MASTER_PLAYLIST,
                "renditions": [self.rendition.json()],
            },
        });
        if self.thumbnails.is_some() {
            media["thumbnails"] = self.thumbnails_json();
        }
        let ended = ended_json(&self.channel_arn, self.started_at, ended_at, media);
        replace_file(&self.dir.join(ENDED_JSON), ended.to_string().as_bytes())
    }
}

fn ended_json(
    channel_arn: &str,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    media: Value,
) -> Value {
    json!({
        "version": "v1",
        "channel_arn": channel_arn,
        "recording_ended_at": ended_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "recording_started_at": started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "recording_status": "RECORDING_ENDED",
        "recording_status_message": "",
        "media": media,
    })
}

/// Writes `path` whole: aside first, then renamed over it, so readers (and a crash)
/// see the old or the new file, never part of one.
fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".tmp");
    let staged = PathBuf::from(staged);
    std::fs::write(&staged, contents)?;
    std::fs::rename(&staged, path)
}

/// Whether `ffmpeg` runs here; asked once, and its absence logged once.
fn ffmpeg_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let found = std::process::Command::new("ffmpeg")
            .arg("-version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            tracing::warn!("ffmpeg is not on PATH: recordings get no thumbnails");
        }
        found
    })
}

fn make_thumbnail(dir: &Path, path: &Path, media: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let staged = path.with_extension("jpg.tmp");
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "mp4",
            "-i",
            "pipe:0",
        ])
        .args(["-frames:v", "1", "-q:v", "4", "-f", "mjpeg", "-y"])
        .arg(&staged)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // ffmpeg may stop reading once it has its frame: a broken pipe is expected.
        let _ = stdin.write_all(media);
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&staged);
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    std::fs::rename(&staged, path).map_err(|e| e.to_string())
}

/// Finishes the recordings under `bucket_root` a previous run left without an end (it
/// was killed): the rendition playlist gets its `EXT-X-ENDLIST` (it plays up to its last
/// complete segment), `recording-ended.json` is written, and a `RecordingEnd` is sent
/// for each. Returns how many it finished.
pub(crate) fn finish_abandoned(
    bucket_root: &Path,
    bucket_name: &str,
    events: &UnboundedSender<IngestEvent>,
) -> usize {
    let mut finished = 0;
    for dir in recording_dirs(&bucket_root.join("ivs").join("v1")) {
        if dir.join(ENDED_JSON).exists() || !dir.join(STARTED_JSON).exists() {
            continue;
        }
        match finish_one(bucket_root, &dir, bucket_name) {
            Ok(event) => {
                finished += 1;
                let _ = events.send(event);
            }
            Err(error) => {
                tracing::error!(dir = %dir.display(), %error, "cannot finish an abandoned recording")
            }
        }
    }
    finished
}

/// The recording directories under `ivs/v1`: `<account>/<channel>/<y>/<m>/<d>/<h>/<min>/<id>`.
fn recording_dirs(root: &Path) -> Vec<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..8 {
        level = level
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .collect();
    }
    level
}

fn finish_one(bucket_root: &Path, dir: &Path, bucket_name: &str) -> Result<IngestEvent, String> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{e}"));
    let started: Value = serde_json::from_str(&read(&dir.join(STARTED_JSON))?)
        .map_err(|e| format!("recording-started.json: {e}"))?;
    let channel_arn = started["channel_arn"].as_str().unwrap_or_default();
    let started_at = started["recording_started_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let mut hls = started["media"]["hls"].clone();
    let rendition = hls["renditions"][0]["path"]
        .as_str()
        .ok_or("recording-started.json names no rendition")?
        .to_owned();
    let playlist_path = dir.join(HLS_PATH).join(&rendition).join(RENDITION_PLAYLIST);
    let (duration_ms, stream_ids, ended_at) = match std::fs::read_to_string(&playlist_path) {
        Ok(text) => {
            let ended_at = std::fs::metadata(&playlist_path)
                .and_then(|m| m.modified())
                .map_or_else(|_| Utc::now(), DateTime::<Utc>::from);
            let (ended_text, duration_ms, stream_ids) = end_playlist(&text);
            replace_file(&playlist_path, ended_text.as_bytes()).map_err(|e| e.to_string())?;
            (duration_ms, stream_ids, ended_at)
        }
        // Killed before its first segment: nothing to play.
        Err(_) => (0, Vec::new(), started_at),
    };
    hls["duration_ms"] = duration_ms.into();
    let mut media = json!({ "hls": hls });
    if let Some(thumbnails) = started["media"].get("thumbnails") {
        media["thumbnails"] = thumbnails.clone();
    }
    let ended = ended_json(channel_arn, started_at, ended_at, media);
    replace_file(&dir.join(ENDED_JSON), ended.to_string().as_bytes()).map_err(|e| e.to_string())?;

    let key_prefix = dir
        .strip_prefix(bucket_root)
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .replace('\\', "/");
    let parts: Vec<&str> = key_prefix.split('/').collect();
    let channel_id = parts.get(3).copied().unwrap_or_default().to_owned();
    let recording_id = parts.last().copied().unwrap_or_default().to_owned();
    tracing::info!(
        key_prefix,
        duration_ms,
        "finished a recording the previous run left open"
    );
    Ok(IngestEvent::RecordingEnd {
        channel_id,
        session_id: stream_ids.last().cloned().unwrap_or_default(),
        at: Utc::now(),
        recording_id,
        bucket_name: bucket_name.to_owned(),
        key_prefix,
        duration_ms,
        stream_ids,
    })
}

/// The playlist as a finished recording: `VOD` with `EXT-X-ENDLIST`; with its duration
/// in milliseconds and the streams it names.
fn end_playlist(text: &str) -> (String, u64, Vec<String>) {
    let mut seconds = 0.0;
    let mut stream_ids = Vec::new();
    let mut ended = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("#EXTINF:") {
            seconds += value
                .split(',')
                .next()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
        if let Some(id) = line.strip_prefix(STREAM_COMMENT) {
            stream_ids.push(id.to_owned());
        }
        if line == "#EXT-X-ENDLIST" {
            continue;
        }
        ended.push_str(if line == "#EXT-X-PLAYLIST-TYPE:EVENT" {
            "#EXT-X-PLAYLIST-TYPE:VOD"
        } else {
            line
        });
        ended.push('\n');
    }
    ended.push_str("#EXT-X-ENDLIST\n");
    (ended, (seconds * 1000.0).round() as u64, stream_ids)
}

/// Channel ids may be anything: keep a path component to safe characters.
fn path_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tokio::sync::mpsc as tokio_mpsc;

    use super::*;

    fn tracks() -> Tracks {
        Tracks {
            video_codec: "avc1.42c01f".into(),
            audio_codec: "mp4a.40.2".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            audio_sample_rate: 48_000,
            audio_channels: 2,
        }
    }

    fn segment() -> Segment {
        Segment {
            data: Bytes::from_static(b"media"),
            duration: Duration::from_millis(1500),
            program_date_time: Utc::now(),
        }
    }

    fn target(root: &Path, window: Duration) -> RecordingTarget {
        RecordingTarget {
            bucket_root: root.to_path_buf(),
            bucket_name: "bucket".into(),
            account_id: "000000000000".into(),
            channel_arn: "arn:aws:ivs:us-east-1:000000000000:channel/ch1".into(),
            reconnect_window: window,
            thumbnail_interval: None,
        }
    }

    fn temp_root() -> PathBuf {
        std::env::temp_dir().join(format!("local-video-recording-{}", ulid::Ulid::generate()))
    }

    async fn next(events: &mut tokio_mpsc::UnboundedReceiver<IngestEvent>) -> IngestEvent {
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event")
            .expect("the sender lives")
    }

    #[test]
    fn the_key_prefix_is_ivs_s() {
        let at = Utc.with_ymd_and_hms(2020, 6, 23, 20, 12, 5).unwrap();
        assert_eq!(
            key_prefix("123456789012", "AsXego4U6tnj", at, "j8Z9"),
            "ivs/v1/123456789012/AsXego4U6tnj/2020/6/23/20/12/j8Z9"
        );
        assert_eq!(path_safe("../x"), "_x");
    }

    #[tokio::test]
    async fn a_reconnect_within_the_window_continues_with_a_discontinuity() {
        let root = temp_root();
        let (events, mut received) = tokio_mpsc::unbounded_channel();
        let target = target(&root, Duration::from_millis(300));
        let mut recording = Recording::start(&target, "ch1", "st-1", &tracks(), events).unwrap();
        recording.write_init(&Bytes::from_static(b"init1"));
        recording.write_segment(&segment());
        recording.pause();
        assert!(recording.continue_with("st-2"));
        recording.write_init(&Bytes::from_static(b"init2"));
        recording.write_segment(&segment());
        recording.pause();

        let IngestEvent::RecordingEnd {
            key_prefix,
            duration_ms,
            stream_ids,
            session_id,
            ..
        } = next(&mut received).await
        else {
            panic!("expected RecordingEnd");
        };
        assert!(!recording.continue_with("st-3"), "ended: a new one starts");
        assert_eq!(duration_ms, 3000);
        assert_eq!(stream_ids, ["st-1", "st-2"]);
        assert_eq!(session_id, "st-2");
        let dir = root.join(&key_prefix);
        let playlist = std::fs::read_to_string(dir.join("media/hls/720p30/playlist.m3u8")).unwrap();
        let tags: Vec<_> = playlist
            .lines()
            .filter(|l| !l.starts_with("#EXT-X-PROGRAM-DATE-TIME"))
            .skip_while(|l| !l.starts_with("# stream-id"))
            .collect();
        assert_eq!(
            tags,
            [
                "# stream-id: st-1",
                "#EXT-X-MAP:URI=\"init-1.mp4\"",
                "#EXTINF:1.500,",
                "0.m4s",
                "#EXT-X-DISCONTINUITY",
                "# stream-id: st-2",
                "#EXT-X-MAP:URI=\"init-2.mp4\"",
                "#EXTINF:1.500,",
                "1.m4s",
                "#EXT-X-ENDLIST",
            ]
        );
        assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        let master = std::fs::read_to_string(dir.join("media/hls/master.m3u8")).unwrap();
        assert!(master.contains("RESOLUTION=1280x720"), "{master}");
        assert!(master.ends_with("720p30/playlist.m3u8\n"));
        let ended: Value =
            serde_json::from_slice(&std::fs::read(dir.join(ENDED_JSON)).unwrap()).unwrap();
        assert_eq!(ended["recording_status"], "RECORDING_ENDED");
        assert_eq!(ended["media"]["hls"]["duration_ms"], 3000);
        assert_eq!(ended["media"]["hls"]["renditions"][0]["path"], "720p30");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn an_abandoned_recording_is_finished_at_the_next_start() {
        let root = temp_root();
        let (events, mut received) = tokio_mpsc::unbounded_channel();
        let target = target(&root, Duration::from_secs(60));
        let recording = Recording::start(&target, "ch1", "st-1", &tracks(), events).unwrap();
        recording.write_init(&Bytes::from_static(b"init1"));
        recording.write_segment(&segment());
        recording.write_segment(&segment());
        let prefix = recording.key_prefix.clone();
        let playlist_path = root.join(&prefix).join("media/hls/720p30/playlist.m3u8");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&playlist_path)
            .map_or(true, |t| t.matches("#EXTINF").count() < 2)
        {
            assert!(Instant::now() < deadline, "not written");
            std::thread::sleep(Duration::from_millis(20));
        }
        // As if killed: the writer never finishes it.
        std::mem::forget(recording);

        let (events, mut received_after) = tokio_mpsc::unbounded_channel();
        assert_eq!(finish_abandoned(&root, "bucket", &events), 1);
        let IngestEvent::RecordingEnd {
            channel_id,
            key_prefix,
            duration_ms,
            stream_ids,
            ..
        } = next(&mut received_after).await
        else {
            panic!("expected RecordingEnd");
        };
        assert_eq!(
            (channel_id.as_str(), key_prefix.as_str()),
            ("ch1", prefix.as_str())
        );
        assert_eq!((duration_ms, stream_ids), (3000, vec!["st-1".to_owned()]));
        let playlist = std::fs::read_to_string(&playlist_path).unwrap();
        assert!(playlist.ends_with("1.m4s\n#EXT-X-ENDLIST\n"), "{playlist}");
        assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(root.join(&prefix).join(ENDED_JSON).exists());
        assert_eq!(finish_abandoned(&root, "bucket", &events), 0, "once");
        assert!(received.try_recv().is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn thumbnails_from_the_first_segment_then_per_interval() {
        let mut thumbnails = Thumbnails::new(Duration::from_secs(3));
        let due: Vec<bool> = (0..8).map(|_| thumbnails.due(1.0)).collect();
        assert_eq!(due, [true, false, false, true, false, false, true, false]);
    }
}
