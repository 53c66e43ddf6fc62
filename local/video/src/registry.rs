//! Which stream keys may publish, which session is live on each channel, and each
//! channel's media: the state shared by the RTMP sessions, the HTTP routes and the
//! control API, with the events its changes emit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::IngestConfig;
use crate::events::IngestEvent;
use crate::health::{HealthMeter, SessionInfo, Tracks};
use crate::media::ChannelMedia;
use crate::playlist::MediaPlaylist;
use crate::recording::{Recording, RecordingTarget};
use crate::segmenter::Segment;

/// The RTMP application name encoders publish to, as on IVS (`rtmps://…/app/`).
pub(crate) const APP_NAME: &str = "app";

/// A publish the registry accepted.
#[derive(Debug)]
pub(crate) struct Publish {
    pub channel_id: String,
    pub session_id: String,
    pub health: Arc<Mutex<HealthMeter>>,
}

pub(crate) struct Registry {
    pub(crate) config: IngestConfig,
    events: UnboundedSender<IngestEvent>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    channel_by_key: HashMap<String, String>,
    channels: HashMap<String, Channel>,
}

struct Channel {
    stream_key: Option<String>,
    /// The live session, or the last one that ended.
    session: Option<SessionRecord>,
    media: ChannelMedia,
    /// Set: its pushes are recorded there.
    recording_target: Option<RecordingTarget>,
    /// The recording in progress or waiting for a reconnect, or the last one.
    recording: Option<Recording>,
}

struct SessionRecord {
    session_id: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    health: Arc<Mutex<HealthMeter>>,
    stream_started: bool,
    /// Wakes the connection task to drop the connection.
    cut: Arc<Notify>,
}

impl SessionRecord {
    fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take playback and control down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    pub(crate) fn new(config: IngestConfig, events: UnboundedSender<IngestEvent>) -> Self {
        Self {
            config,
            events,
            state: Mutex::default(),
        }
    }

    pub(crate) fn events(&self) -> &UnboundedSender<IngestEvent> {
        &self.events
    }

    fn emit(&self, event: IngestEvent) {
        // Nobody listening is fine: the events are a report, not a control path.
        let _ = self.events.send(event);
    }

    fn new_channel(&self) -> Channel {
        Channel {
            stream_key: None,
            session: None,
            media: ChannelMedia::new(self.config.playlist_segments),
            recording_target: None,
            recording: None,
        }
    }

    pub(crate) fn allow_key(&self, stream_key: &str, channel_id: &str) {
        let mut state = lock(&self.state);
        if state.channel_by_key.get(stream_key).map(String::as_str) == Some(channel_id) {
            return;
        }
        self.revoke_locked(&mut state, stream_key);
        let old_key = state
            .channels
            .get(channel_id)
            .and_then(|c| c.stream_key.clone());
        if let Some(old_key) = old_key {
            self.revoke_locked(&mut state, &old_key);
        }
        state
            .channel_by_key
            .insert(stream_key.to_owned(), channel_id.to_owned());
        state
            .channels
            .entry(channel_id.to_owned())
            .or_insert_with(|| self.new_channel())
            .stream_key = Some(stream_key.to_owned());
    }

    pub(crate) fn revoke_key(&self, stream_key: &str) {
        let mut state = lock(&self.state);
        self.revoke_locked(&mut state, stream_key);
    }

    /// Forgets the key and cuts off whoever publishes with it.
    fn revoke_locked(&self, state: &mut State, stream_key: &str) {
        let Some(channel_id) = state.channel_by_key.remove(stream_key) else {
            return;
        };
        if let Some(channel) = state.channels.get_mut(&channel_id) {
            channel.stream_key = None;
            self.end_locked(&channel_id, channel, End::CutOff);
        }
    }

    pub(crate) fn stop_channel(&self, channel_id: &str) -> bool {
        let mut state = lock(&self.state);
        state
            .channels
            .get_mut(channel_id)
            .is_some_and(|channel| self.end_locked(channel_id, channel, End::Stopped))
    }

    pub(crate) fn forget_channel(&self, channel_id: &str) {
        let mut state = lock(&self.state);
        if let Some(mut channel) = state.channels.remove(channel_id) {
            if let Some(key) = channel.stream_key.take() {
                state.channel_by_key.remove(&key);
            }
            self.end_locked(channel_id, &mut channel, End::CutOff);
        }
    }

    pub(crate) fn set_recording(&self, channel_id: &str, target: Option<RecordingTarget>) {
        let mut state = lock(&self.state);
        let channel = state
            .channels
            .entry(channel_id.to_owned())
            .or_insert_with(|| self.new_channel());
        // A recording in progress keeps its own settings until it ends.
        channel.recording_target = target;
    }

    pub(crate) fn session(&self, channel_id: &str) -> Option<SessionInfo> {
        let state = lock(&self.state);
        let record = state.channels.get(channel_id)?.session.as_ref()?;
        let health = lock(&record.health).health(Instant::now());
        Some(SessionInfo {
            session_id: record.session_id.clone(),
            started_at: record.started_at,
            ended_at: record.ended_at,
            health,
        })
    }

    pub(crate) fn is_live(&self, channel_id: &str) -> bool {
        let state = lock(&self.state);
        state
            .channels
            .get(channel_id)
            .and_then(|c| c.session.as_ref())
            .is_some_and(SessionRecord::is_live)
    }

    /// Accepts a publish on an allowed key, taking the channel over from a live
    /// session; `None` refuses it.
    pub(crate) fn start_session(
        &self,
        app_name: &str,
        stream_key: &str,
        cut: Arc<Notify>,
    ) -> Option<Publish> {
        if app_name != APP_NAME {
            return None;
        }
        let mut state = lock(&self.state);
        let channel_id = state.channel_by_key.get(stream_key)?.clone();
        let channel = state.channels.get_mut(&channel_id)?;
        // The new push carries the class on: a recording waits for it.
        let takeover = self.end_locked(&channel_id, channel, End::Dropped);

        let session_id = format!("st-{}", ulid::Ulid::generate());
        let health = Arc::new(Mutex::new(HealthMeter::default()));
        let now = Utc::now();
        channel.session = Some(SessionRecord {
            session_id: session_id.clone(),
            started_at: now,
            ended_at: None,
            health: Arc::clone(&health),
            stream_started: false,
            cut,
        });
        tracing::info!(channel_id, session_id, takeover, "stream session created");
        self.emit(IngestEvent::SessionCreated {
            channel_id: channel_id.clone(),
            session_id: session_id.clone(),
            at: now,
        });
        if takeover {
            self.emit(IngestEvent::StreamTakeover {
                channel_id: channel_id.clone(),
                session_id: session_id.clone(),
                at: now,
            });
        }
        Some(Publish {
            channel_id,
            session_id,
            health,
        })
    }

    /// Publishes a session's init segment; false when the session is no longer live.
    pub(crate) fn publish_init(&self, publish: &Publish, data: Bytes, tracks: Tracks) -> bool {
        let mut state = lock(&self.state);
        let Some(channel) = live_channel(&mut state, publish) else {
            return false;
        };
        lock(&publish.health).set_tracks(tracks.clone());
        channel.media.add_init(data.clone());
        let Some(record) = channel.session.as_mut() else {
            return false;
        };
        if !std::mem::replace(&mut record.stream_started, true) {
            tracing::info!(
                channel_id = publish.channel_id,
                session_id = publish.session_id,
                "stream started"
            );
            self.emit(IngestEvent::StreamStart {
                channel_id: publish.channel_id.clone(),
                session_id: publish.session_id.clone(),
                at: Utc::now(),
            });
        }
        self.record_init(channel, publish, &data, &tracks);
        true
    }

    /// Hands a session's init segment to the channel's recording: the one going on (or
    /// waiting within its reconnect window), or a new one.
    fn record_init(&self, channel: &mut Channel, publish: &Publish, data: &Bytes, tracks: &Tracks) {
        let Some(target) = &channel.recording_target else {
            return;
        };
        let continuing = channel
            .recording
            .as_mut()
            .is_some_and(|r| r.continue_with(&publish.session_id));
        if !continuing {
            let started = Recording::start(
                target,
                &publish.channel_id,
                &publish.session_id,
                tracks,
                self.events.clone(),
            );
            match started {
                Ok(recording) => {
                    tracing::info!(
                        channel_id = publish.channel_id,
                        recording_id = recording.recording_id,
                        "recording started"
                    );
                    self.emit(IngestEvent::RecordingStart {
                        channel_id: publish.channel_id.clone(),
                        session_id: publish.session_id.clone(),
                        at: Utc::now(),
                        recording_id: recording.recording_id.clone(),
                        bucket_name: target.bucket_name.clone(),
                        key_prefix: recording.key_prefix.clone(),
                    });
                    channel.recording = Some(recording);
                }
                Err(reason) => {
                    tracing::error!(
                        channel_id = publish.channel_id,
                        reason,
                        "recording failed to start"
                    );
                    self.emit(IngestEvent::RecordingStartFailure {
                        channel_id: publish.channel_id.clone(),
                        session_id: publish.session_id.clone(),
                        at: Utc::now(),
                        bucket_name: target.bucket_name.clone(),
                        reason,
                    });
                    channel.recording = None;
                    return;
                }
            }
        }
        if let Some(recording) = &channel.recording {
            recording.write_init(data);
        }
    }

    /// Lists a session's segment; false when the session is no longer live.
    pub(crate) fn publish_segment(&self, publish: &Publish, segment: &Segment) -> bool {
        let mut state = lock(&self.state);
        let Some(channel) = live_channel(&mut state, publish) else {
            return false;
        };
        if channel.media.add_segment(segment).is_none() {
            return false;
        }
        if let Some(recording) = &channel.recording {
            recording.write_segment(segment);
        }
        true
    }

    /// Ends the session if it is still the live one.
    pub(crate) fn end_session(&self, publish: &Publish) {
        let mut state = lock(&self.state);
        if let Some(channel) = live_channel(&mut state, publish) {
            self.end_locked(&publish.channel_id, channel, End::Dropped);
        }
    }

    /// Reports that the session's media cannot be played, then ends it.
    pub(crate) fn fail_session(&self, publish: &Publish, reason: String) {
        let mut state = lock(&self.state);
        if let Some(channel) = live_channel(&mut state, publish) {
            tracing::warn!(
                channel_id = publish.channel_id,
                session_id = publish.session_id,
                reason,
                "stream failure"
            );
            self.emit(IngestEvent::StreamFailure {
                channel_id: publish.channel_id.clone(),
                session_id: publish.session_id.clone(),
                at: Utc::now(),
                reason,
            });
            self.end_locked(&publish.channel_id, channel, End::Dropped);
        }
    }

    /// Ends the channel's live session, if any, and cuts its connection; returns
    /// whether there was one. Its recording waits for a reconnect when the push dropped
    /// or was stopped, and ends at once when the channel was cut off.
    fn end_locked(&self, channel_id: &str, channel: &mut Channel, end: End) -> bool {
        if end == End::CutOff
            && let Some(recording) = &channel.recording
        {
            recording.finish();
        }
        let Some(record) = channel.session.as_mut().filter(|r| r.is_live()) else {
            return false;
        };
        let now = Utc::now();
        record.ended_at = Some(now);
        lock(&record.health).freeze(Instant::now());
        record.cut.notify_one();
        if end != End::CutOff
            && let Some(recording) = &channel.recording
        {
            recording.pause();
        }
        tracing::info!(channel_id, session_id = record.session_id, "stream ended");
        self.emit(IngestEvent::StreamEnd {
            channel_id: channel_id.to_owned(),
            session_id: record.session_id.clone(),
            at: now,
        });
        true
    }

    pub(crate) fn playlist(&self, channel_id: &str) -> Option<MediaPlaylist> {
        lock(&self.state).channels.get(channel_id)?.media.playlist()
    }

    pub(crate) fn init_segment(&self, channel_id: &str, number: u32) -> Option<Bytes> {
        lock(&self.state)
            .channels
            .get(channel_id)?
            .media
            .init(number)
    }

    pub(crate) fn media_segment(&self, channel_id: &str, sequence: u64) -> Option<Bytes> {
        lock(&self.state)
            .channels
            .get(channel_id)?
            .media
            .segment(sequence)
    }
}

/// How a session ended, for its recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The push dropped or was taken over: an encoder may come back.
    Dropped,
    /// StopStream: the push is cut off but the key stays, so an encoder may come back
    /// (the shared code stops a live channel to change its settings). Its recording
    /// waits for the reconnect window, as on IVS.
    Stopped,
    /// The channel's key was deleted, or the channel: nothing can push to it again.
    CutOff,
}

fn live_channel<'a>(state: &'a mut State, publish: &Publish) -> Option<&'a mut Channel> {
    state
        .channels
        .get_mut(&publish.channel_id)
        .filter(|channel| {
            channel
                .session
                .as_ref()
                .is_some_and(|r| r.is_live() && r.session_id == publish.session_id)
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    fn registry() -> (Registry, mpsc::UnboundedReceiver<IngestEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        (Registry::new(IngestConfig::default(), events), receiver)
    }

    fn publish(registry: &Registry, key: &str) -> Option<(Publish, Arc<Notify>)> {
        let cut = Arc::new(Notify::new());
        registry
            .start_session(APP_NAME, key, Arc::clone(&cut))
            .map(|p| (p, cut))
    }

    fn names(events: &mut mpsc::UnboundedReceiver<IngestEvent>) -> Vec<String> {
        std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| {
                let json = serde_json::to_value(&e).unwrap();
                format!("{}:{}", json["event"].as_str().unwrap(), e.session_id())
            })
            .collect()
    }

    async fn was_cut(cut: &Notify) -> bool {
        tokio::time::timeout(Duration::from_secs(1), cut.notified())
            .await
            .is_ok()
    }

    #[test]
    fn only_allowed_keys_on_the_app_publish() {
        let (registry, mut events) = registry();
        registry.allow_key("sk_a", "ch");
        assert!(publish(&registry, "sk_b").is_none());
        assert!(
            registry
                .start_session("live", "sk_a", Arc::new(Notify::new()))
                .is_none()
        );
        assert!(names(&mut events).is_empty());
        let (session, _cut) = publish(&registry, "sk_a").unwrap();
        assert_eq!(session.channel_id, "ch");
        assert_eq!(
            names(&mut events),
            vec![format!("session_created:{}", session.session_id)]
        );
    }

    #[tokio::test]
    async fn a_new_key_replaces_and_revokes_the_old_one() {
        let (registry, mut events) = registry();
        registry.allow_key("sk_old", "ch");
        let (old, cut) = publish(&registry, "sk_old").unwrap();
        registry.allow_key("sk_old", "ch");
        assert!(
            registry.is_live("ch"),
            "allowing the same key again changes nothing"
        );

        registry.allow_key("sk_new", "ch");
        assert!(was_cut(&cut).await);
        assert!(!registry.is_live("ch"));
        assert!(publish(&registry, "sk_old").is_none());
        let (new, _cut) = publish(&registry, "sk_new").unwrap();
        assert_eq!(
            names(&mut events),
            vec![
                format!("session_created:{}", old.session_id),
                format!("stream_end:{}", old.session_id),
                format!("session_created:{}", new.session_id),
            ]
        );
    }

    #[tokio::test]
    async fn a_takeover_ends_the_old_session_first() {
        let (registry, mut events) = registry();
        registry.allow_key("sk", "ch");
        let (first, first_cut) = publish(&registry, "sk").unwrap();
        let (second, _cut) = publish(&registry, "sk").unwrap();
        assert!(was_cut(&first_cut).await);
        assert_eq!(
            names(&mut events),
            vec![
                format!("session_created:{}", first.session_id),
                format!("stream_end:{}", first.session_id),
                format!("session_created:{}", second.session_id),
                format!("stream_takeover:{}", second.session_id),
            ]
        );
        // The old session's late media and end change nothing.
        assert!(!registry.publish_init(&first, Bytes::from_static(b"init"), test_tracks()));
        registry.end_session(&first);
        assert!(registry.is_live("ch"));
        assert!(names(&mut events).is_empty());
    }

    #[test]
    fn events_of_a_session_in_order() {
        let (registry, mut events) = registry();
        registry.allow_key("sk", "ch");
        let (session, _cut) = publish(&registry, "sk").unwrap();
        assert!(registry.publish_init(&session, Bytes::from_static(b"init"), test_tracks()));
        registry.fail_session(&session, "bad media".into());
        registry.end_session(&session);
        let id = &session.session_id;
        assert_eq!(
            names(&mut events),
            vec![
                format!("session_created:{id}"),
                format!("stream_start:{id}"),
                format!("stream_failure:{id}"),
                format!("stream_end:{id}"),
            ]
        );
        let info = registry.session("ch").unwrap();
        assert!(info.ended_at.is_some());
        assert_eq!(info.health.unwrap().width, 1280);
    }

    #[test]
    fn stop_keeps_the_key_and_forget_drops_everything() {
        let (registry, _events) = registry();
        registry.allow_key("sk", "ch");
        let (session, _cut) = publish(&registry, "sk").unwrap();
        registry.publish_init(&session, Bytes::from_static(b"init"), test_tracks());
        let segment = Segment {
            data: Bytes::from_static(b"media"),
            duration: Duration::from_secs(1),
            program_date_time: Utc::now(),
        };
        assert!(registry.publish_segment(&session, &segment));
        assert!(registry.stop_channel("ch"));
        assert!(!registry.stop_channel("ch"));
        assert!(
            registry.playlist("ch").is_some(),
            "the playlist outlives the session"
        );

        let (_again, _cut) = publish(&registry, "sk").unwrap();
        registry.forget_channel("ch");
        assert!(!registry.is_live("ch"));
        assert!(registry.session("ch").is_none());
        assert!(registry.playlist("ch").is_none());
        assert!(publish(&registry, "sk").is_none());
    }

    fn test_tracks() -> Tracks {
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
}
