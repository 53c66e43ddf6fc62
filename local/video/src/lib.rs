//! The local stack's video engine: it plays the part of Amazon IVS ingest and playback
//! on one machine.
//!
//! Encoders (OBS "Custom" service, ffmpeg) publish H.264/AAC over RTMP to
//! `rtmp://HOST:PORT/app/<stream key>`. The media is remuxed, not transcoded, to HLS
//! with fMP4 (CMAF) segments of ~1–2 s, served by [`Ingest::playback_router`] at
//! `/video/{channel_id}/index.m3u8`. Stream keys are allowed and revoked by the IVS
//! API emulator through [`Ingest`]; stream state changes arrive as [`IngestEvent`]s.
//!
//! Stream keys are secrets: nothing here logs one (channel and session ids instead).

#![warn(missing_docs)]

mod events;
mod health;
mod http;
mod init_segment;
mod media;
mod playlist;
mod recording;
mod registry;
mod remux;
mod rtmp;
mod segmenter;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use events::IngestEvent;
pub use health::{Health, SessionInfo};
pub use recording::RecordingTarget;

use registry::Registry;

/// Playback authorization: `(channel_id, token)` → allowed. The token is the request's
/// `?token=` query parameter, if any.
pub type Authorize = Arc<dyn Fn(&str, Option<&str>) -> bool + Send + Sync>;

/// Settings of the ingest.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Least media duration of a segment: a segment is cut at the first video keyframe
    /// after it, so segments last about one to two GOPs.
    pub segment_target: Duration,
    /// Segments kept per channel and listed in its live playlist.
    pub playlist_segments: usize,
    /// A session whose connection delivers no audio or video for this long is ended.
    /// A connection that sends nothing at all is ended sooner, after 2.5 s: scuffle-rtmp
    /// times out its socket reads after that long and cannot be told otherwise.
    pub idle_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(1),
            playlist_segments: 6,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The video engine: RTMP ingest, HLS playback and the stream key and channel control.
/// Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Ingest {
    registry: Arc<Registry>,
}

impl Ingest {
    /// Creates the engine and the receiver of its stream state events.
    pub fn new(config: IngestConfig) -> (Self, mpsc::UnboundedReceiver<IngestEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry::new(config, events));
        (Self { registry }, receiver)
    }

    /// Lets `stream_key` publish to `channel_id`. A channel has one key: a new one
    /// replaces (and revokes, see [`Ingest::revoke_key`]) the channel's previous key.
    /// Allowing the key a channel already has changes nothing.
    pub fn allow_key(&self, stream_key: &str, channel_id: &str) {
        self.registry.allow_key(stream_key, channel_id);
    }

    /// Refuses new publishes with `stream_key` and cuts off the session publishing
    /// with it now (its `StreamEnd` is sent).
    pub fn revoke_key(&self, stream_key: &str) {
        self.registry.revoke_key(stream_key);
    }

    /// Cuts off the channel's live session, like IVS StopStream; the key stays allowed,
    /// so the encoder may reconnect. Returns whether a session was live.
    pub fn stop_channel(&self, channel_id: &str) -> bool {
        self.registry.stop_channel(channel_id)
    }

    /// Revokes the channel's key, cuts off its session and drops its media and session
    /// history (a deleted channel).
    pub fn forget_channel(&self, channel_id: &str) {
        self.registry.forget_channel(channel_id);
    }

    /// Records the channel's pushes into `target`'s bucket as IVS does (`None`: stops
    /// recording new pushes). A recording starts with a push's first media and goes on
    /// across reconnects within the target's window, a StopStream included; it ends
    /// when the window passes without a push, or at once when the channel's key is
    /// revoked or the channel forgotten (the class was stopped). Its [`IngestEvent::RecordingStart`] and
    /// [`IngestEvent::RecordingEnd`] come with the stream events.
    pub fn set_recording(&self, channel_id: &str, target: Option<RecordingTarget>) {
        self.registry.set_recording(channel_id, target);
    }

    /// Finishes the recordings a previous run left open in the bucket at `bucket_root`
    /// (it was killed mid-recording): each plays up to its last complete segment, gets
    /// its `recording-ended.json` and its [`IngestEvent::RecordingEnd`]. Returns how many.
    pub fn finish_abandoned_recordings(&self, bucket_root: &Path, bucket_name: &str) -> usize {
        recording::finish_abandoned(bucket_root, bucket_name, self.registry.events())
    }

    /// The channel's live session, or the last one that ended.
    pub fn session(&self, channel_id: &str) -> Option<SessionInfo> {
        self.registry.session(channel_id)
    }

    /// Whether a session is publishing to the channel.
    pub fn is_live(&self, channel_id: &str) -> bool {
        self.registry.is_live(channel_id)
    }

    /// Accepts RTMP connections until `stop` becomes true, then cuts off every session
    /// and returns once their connections are closed.
    pub async fn serve_rtmp(self, listener: TcpListener, stop: watch::Receiver<bool>) {
        rtmp::serve(self.registry, listener, stop).await;
    }

    /// The HLS routes: `GET /video/{channel_id}/index.m3u8`, `…/init-<n>.mp4` and
    /// `…/seg-<seq>.m4s`, each checked with `authorize`.
    pub fn playback_router(&self, authorize: Authorize) -> axum::Router {
        http::router(Arc::clone(&self.registry), authorize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn ingest_is_shareable() {
        assert_send_sync_clone::<Ingest>();
    }

    #[tokio::test]
    async fn control_without_sessions() {
        let (ingest, _events) = Ingest::new(IngestConfig::default());
        ingest.allow_key("sk_1", "ch1");
        assert!(!ingest.is_live("ch1"));
        assert!(!ingest.stop_channel("ch1"));
        assert_eq!(ingest.session("ch1"), None);
        ingest.revoke_key("sk_1");
        ingest.forget_channel("ch1");
        ingest.forget_channel("never-seen");
    }
}
