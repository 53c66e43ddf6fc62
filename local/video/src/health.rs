//! Stream health measured from the media that arrives, the way IVS reports it for a
//! stream session (ingest codecs, resolution, frame rate, bitrate, keyframe interval).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How far back frame rate and bitrate are measured.
const MEASURE_WINDOW: Duration = Duration::from_secs(5);

/// A publish session on a channel: the current one, or the last one that ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    /// Unique id of the session (`st-` followed by a ULID).
    pub session_id: String,
    /// When the publish was accepted.
    pub started_at: DateTime<Utc>,
    /// When the session ended; `None` while it is live.
    pub ended_at: Option<DateTime<Utc>>,
    /// What the ingest measured; `None` until the first media (the init segment) is ready.
    pub health: Option<Health>,
}

/// What the ingest measured of a session's media. Rates cover the last ~5 s (of the
/// session's life, for an ended session).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// RFC 6381 codec string of the video track, e.g. `avc1.64001f`.
    pub video_codec: String,
    /// RFC 6381 codec string of the audio track, e.g. `mp4a.40.2`.
    pub audio_codec: String,
    /// Video width in pixels.
    pub width: u32,
    /// Video height in pixels.
    pub height: u32,
    /// Measured video frames per second.
    pub frame_rate: f64,
    /// Measured audio + video payload bitrate in bits per second.
    pub bitrate_bps: u64,
    /// Seconds between the last two keyframes (media time); `None` before the second one.
    pub keyframe_interval_seconds: Option<f64>,
    /// Audio sample rate in Hz.
    pub audio_sample_rate: u32,
    /// Audio channel count.
    pub audio_channels: u8,
}

/// The tracks a session's init segment describes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tracks {
    pub video_codec: String,
    pub audio_codec: String,
    pub width: u32,
    pub height: u32,
    /// As the encoder's metadata says (0 when it says nothing).
    pub frame_rate: f64,
    pub audio_sample_rate: u32,
    pub audio_channels: u8,
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Instant,
    bytes: usize,
    video_frame: bool,
}

/// Accumulates what arrives on one session; read at any time with [`HealthMeter::health`].
#[derive(Debug, Default)]
pub(crate) struct HealthMeter {
    tracks: Option<Tracks>,
    window: VecDeque<Arrival>,
    first_arrival: Option<Instant>,
    last_keyframe_ms: Option<u32>,
    keyframe_interval_seconds: Option<f64>,
    /// Set when the session ends, so its figures stay those of its last seconds.
    frozen_at: Option<Instant>,
}

impl HealthMeter {
    pub(crate) fn set_tracks(&mut self, tracks: Tracks) {
        self.tracks = Some(tracks);
    }

    /// Records one RTMP video message (an FLV video tag body).
    pub(crate) fn record_video(&mut self, at: Instant, timestamp_ms: u32, body: &[u8]) {
        let frame = coded_video_frame(body);
        if frame == Some(true) {
            if let Some(last) = self.last_keyframe_ms
                && timestamp_ms > last
            {
                self.keyframe_interval_seconds = Some(f64::from(timestamp_ms - last) / 1000.0);
            }
            self.last_keyframe_ms = Some(timestamp_ms);
        }
        self.record(at, body.len(), frame.is_some());
    }

    /// Records one RTMP audio message (an FLV audio tag body).
    pub(crate) fn record_audio(&mut self, at: Instant, body: &[u8]) {
        self.record(at, body.len(), false);
    }

    pub(crate) fn freeze(&mut self, at: Instant) {
        self.frozen_at.get_or_insert(at);
    }

    fn record(&mut self, at: Instant, bytes: usize, video_frame: bool) {
        self.first_arrival.get_or_insert(at);
        self.window.push_back(Arrival {
            at,
            bytes,
            video_frame,
        });
        while self
            .window
            .front()
            .is_some_and(|a| at.duration_since(a.at) > MEASURE_WINDOW)
        {
            self.window.pop_front();
        }
    }

    pub(crate) fn health(&self, now: Instant) -> Option<Health> {
        let tracks = self.tracks.as_ref()?;
        let now = self.frozen_at.unwrap_or(now);
        let (frames, bytes) = self
            .window
            .iter()
            .filter(|a| now.saturating_duration_since(a.at) <= MEASURE_WINDOW)
            .fold((0usize, 0usize), |(frames, bytes), a| {
                (frames + usize::from(a.video_frame), bytes + a.bytes)
            });
        // A session younger than the window is measured over its own age.
        let span = self
            .first_arrival
            .map(|first| now.saturating_duration_since(first).min(MEASURE_WINDOW))
            .unwrap_or_default()
            .as_secs_f64();
        let (frame_rate, bitrate_bps) = if span > 0.0 {
            (frames as f64 / span, (bytes as f64 * 8.0 / span) as u64)
        } else {
            (0.0, 0)
        };
        Some(Health {
            video_codec: tracks.video_codec.clone(),
            audio_codec: tracks.audio_codec.clone(),
            width: tracks.width,
            height: tracks.height,
            frame_rate,
            bitrate_bps,
            keyframe_interval_seconds: self.keyframe_interval_seconds,
            audio_sample_rate: tracks.audio_sample_rate,
            audio_channels: tracks.audio_channels,
        })
    }
}

/// `Some(is_keyframe)` when an FLV video tag body carries a coded frame; `None` for
/// sequence headers, end-of-sequence and command frames.
fn coded_video_frame(body: &[u8]) -> Option<bool> {
    let first = *body.first()?;
    let keyframe = (first >> 4) & 0x07 == 1;
    let coded = if first & 0x80 == 0 {
        // Legacy header: codec id in the low nibble; AVC carries a packet type (1 = NALU).
        let codec_id = first & 0x0f;
        codec_id != 7 || body.get(1) == Some(&1)
    } else {
        // Enhanced RTMP header: packet type in the low nibble (1 = CodedFrames, 3 = CodedFramesX).
        matches!(first & 0x0f, 1 | 3)
    };
    coded.then_some(keyframe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracks() -> Tracks {
        Tracks {
            video_codec: "avc1.64001f".into(),
            audio_codec: "mp4a.40.2".into(),
            width: 1280,
            height: 720,
            frame_rate: 30.0,
            audio_sample_rate: 48_000,
            audio_channels: 1,
        }
    }

    const KEYFRAME: [u8; 4] = [0x17, 1, 0, 0];
    const INTERFRAME: [u8; 4] = [0x27, 1, 0, 0];
    const SEQUENCE_HEADER: [u8; 4] = [0x17, 0, 0, 0];

    #[test]
    fn classifies_flv_video_bodies() {
        assert_eq!(coded_video_frame(&KEYFRAME), Some(true));
        assert_eq!(coded_video_frame(&INTERFRAME), Some(false));
        assert_eq!(coded_video_frame(&SEQUENCE_HEADER), None);
        assert_eq!(coded_video_frame(&[]), None);
        // Enhanced RTMP: key frame, CodedFramesX / SequenceStart.
        assert_eq!(
            coded_video_frame(&[0x93, b'h', b'v', b'c', b'1']),
            Some(true)
        );
        assert_eq!(coded_video_frame(&[0x90, b'h', b'v', b'c', b'1']), None);
    }

    #[test]
    fn no_health_before_tracks_are_known() {
        let mut meter = HealthMeter::default();
        meter.record_video(Instant::now(), 0, &KEYFRAME);
        assert_eq!(meter.health(Instant::now()), None);
    }

    #[test]
    fn measures_rates_and_keyframe_interval() {
        let start = Instant::now();
        let mut meter = HealthMeter::default();
        meter.set_tracks(tracks());
        // 4 s of 30 fps video, 1000-byte frames, a keyframe every 30 frames.
        for frame in 0..120u32 {
            let at = start + Duration::from_millis(u64::from(frame) * 1000 / 30);
            let mut body = vec![0u8; 1000];
            body[..4].copy_from_slice(if frame % 30 == 0 {
                &KEYFRAME
            } else {
                &INTERFRAME
            });
            meter.record_video(at, frame * 1000 / 30, &body);
        }
        let health = meter.health(start + Duration::from_secs(4)).unwrap();
        assert!(
            (health.frame_rate - 30.0).abs() < 0.5,
            "{}",
            health.frame_rate
        );
        assert_eq!(health.bitrate_bps, 240_000);
        assert_eq!(health.keyframe_interval_seconds, Some(1.0));
        assert_eq!((health.width, health.height), (1280, 720));
    }

    #[test]
    fn frozen_meter_keeps_its_last_figures() {
        let start = Instant::now();
        let mut meter = HealthMeter::default();
        meter.set_tracks(tracks());
        for frame in 0..60u32 {
            let at = start + Duration::from_millis(u64::from(frame) * 1000 / 30);
            meter.record_video(at, frame * 33, &INTERFRAME);
        }
        meter.freeze(start + Duration::from_secs(2));
        let later = meter.health(start + Duration::from_secs(60)).unwrap();
        assert!(
            (later.frame_rate - 30.0).abs() < 0.5,
            "{}",
            later.frame_rate
        );
    }
}
