//! The class's video: its channel on the video service, the encoder's key, who may
//! play it, and the ingest state machine that the video service's events drive.
//!
//! A scheduled stream whose encoder starts pushing goes live by itself (the same
//! transition as `/start`). When the push drops the ingest is `reconnecting`; a push
//! back within the grace period carries on the same class, and a stream that went live
//! from its encoder ends (as `/stop` ends it) when the grace period passes without
//! one, which the sweeper finds.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::stream::Resolution;
use crate::model::{Ingest, IngestHealth, IngestState};
use crate::model::{Stream, StreamStatus, now};
use crate::store::{Store, StoreError};
use crate::video::Video;

use super::access::{self, load, load_owned, load_visible};

/// What the instructor's encoder needs, and how the push is doing.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(example = ingest_example())]
pub struct IngestInfo {
    /// OBS: Settings > Stream > Service "Custom", Server.
    pub ingest_url: String,
    /// OBS: Stream Key. A secret: whoever has it can broadcast to the class.
    pub stream_key: String,
    pub state: IngestState,
    /// The push of the current (or last) ingest state.
    pub session_id: Option<String>,
    /// While `reconnecting`: when the class ends unless the push comes back.
    pub reconnect_deadline: Option<DateTime<Utc>>,
    /// Measured from what arrives, while an encoder is pushing.
    pub health: Option<IngestHealth>,
    /// The encoder settings that match the stream's quality settings.
    pub encoder: EncoderSettings,
}

/// Encoder output settings for the stream's quality settings (OBS: Settings > Output,
/// Output Mode "Advanced"; Settings > Video).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EncoderSettings {
    pub video_codec: &'static str,
    pub audio_codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub frame_rate: u16,
    pub bitrate_kbps: u32,
    /// A keyframe every 2 seconds: segments, and so the delay, follow it.
    pub keyframe_interval_seconds: u32,
    pub rate_control: &'static str,
}

impl EncoderSettings {
    fn of(stream: &Stream) -> Self {
        let quality = &stream.quality_settings;
        let (width, height) = match quality.resolution {
            Resolution::P480 => (854, 480),
            Resolution::P720 => (1280, 720),
            Resolution::P1080 => (1920, 1080),
            Resolution::K4 => (3840, 2160),
        };
        Self {
            video_codec: "H.264 (x264), profile main or high, no B-frames",
            audio_codec: "AAC-LC, 48 kHz, 160 kbps",
            width,
            height,
            frame_rate: quality.frame_rate,
            bitrate_kbps: quality.bitrate_kbps,
            keyframe_interval_seconds: 2,
            rate_control: "CBR",
        }
    }
}

fn ingest_example() -> serde_json::Value {
    serde_json::json!({
        "ingest_url": "rtmps://a1b2c3d4e5f6.global-contribute.live-video.net:443/app/",
        "stream_key": "sk_us-east-1_AbCdEf0123456789",
        "state": "connected",
        "session_id": "st-1A2b3C4d5E6f",
        "reconnect_deadline": null,
        "health": {
            "video_codec": "avc1.64001f", "audio_codec": "mp4a.40.2",
            "width": 1280, "height": 720, "frame_rate": 30.0,
            "bitrate_kbps": 2480.5, "keyframe_interval_seconds": 2.0
        },
        "encoder": {
            "video_codec": "H.264 (x264), profile main or high, no B-frames",
            "audio_codec": "AAC-LC, 48 kHz, 160 kbps",
            "width": 1280, "height": 720, "frame_rate": 30, "bitrate_kbps": 2500,
            "keyframe_interval_seconds": 2, "rate_control": "CBR"
        }
    })
}

/// Where a viewer plays the class.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Playback {
    /// The HLS playlist to play; a private stream's carries the viewer's token.
    pub playback_url: String,
    /// A private stream's viewer token (also in `playback_url`), for this viewer only.
    pub token: Option<String>,
    /// When the token stops playing: ask again before then.
    pub expires_at: Option<DateTime<Utc>>,
    pub status: StreamStatus,
    /// `idle` before the teacher pushes ("waiting for the teacher").
    pub ingest_state: IngestState,
}

/// `detail` of an "IVS Stream State Change" event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StreamStateChange {
    /// `Session Created`, `Stream Start`, `Stream End`, `Stream Failure`,
    /// `Stream Takeover`.
    pub event_name: String,
    #[serde(default)]
    pub channel_name: Option<String>,
    /// The push's session id.
    #[serde(default)]
    pub stream_id: Option<String>,
}

/// The EventBridge event the video function is given.
pub type StreamStateEvent = aws_lambda_events::eventbridge::EventBridgeEvent<StreamStateChange>;

/// What one event did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// The ingest state changed.
    Recorded,
    /// The ingest state changed and the scheduled stream went live.
    WentLive,
    /// Older than what is recorded, a push another replaced, or a kind with no state.
    Ignored,
    /// The channel belongs to no stream here.
    UnknownChannel,
    /// The stream is finished: the push was cut off.
    CutOff,
}

/// Creates the stream's channel if it has none yet (a stream from before video, or one
/// whose creation failed) and stores it. Finished streams get none.
pub async fn ensure_channel(
    store: &Store,
    video: &Video,
    stream: Stream,
) -> Result<Stream, ApiError> {
    if stream.channel_arn.is_some() || stream.status.is_finished() {
        return Ok(stream);
    }
    let channel = video.create_channel(&stream).await?;
    match store.set_channel(&stream.id, &channel, now()).await {
        Ok(stored) => Ok(stored),
        Err(err) => {
            // Another request stored its channel first, or the write failed: this one
            // must not be left behind with a working key.
            if let Err(e) = video.delete_channel(&channel.arn).await {
                tracing::error!(channel = %channel.arn, error = %e, "unused channel not deleted");
            }
            match err {
                StoreError::ConditionFailed => load(store, &stream.id).await,
                other => Err(other.into()),
            }
        }
    }
}

fn video_required(video: Option<&Video>) -> Result<&Video, ApiError> {
    video.ok_or_else(|| {
        ApiError::conflict(
            "video_unavailable",
            "this deployment has no video service configured",
        )
    })
}

fn ingest_info(stream: &Stream, health: Option<IngestHealth>) -> Result<IngestInfo, ApiError> {
    let ingest_url = stream
        .ingest_url
        .clone()
        .ok_or_else(|| ApiError::Internal("a channel without an ingest url".into()))?;
    Ok(IngestInfo {
        ingest_url,
        stream_key: stream.stream_key.clone(),
        state: stream.ingest.state,
        session_id: stream.ingest.session_id.clone(),
        reconnect_deadline: stream.ingest.reconnect_deadline,
        health,
        encoder: EncoderSettings::of(stream),
    })
}

/// The video service and the caller's own open stream, with its channel.
async fn own_channel<'v>(
    store: &Store,
    video: Option<&'v Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<(&'v Video, Stream), ApiError> {
    let video = video_required(video)?;
    let stream = load_owned(store, who, stream_id).await?;
    access::require_open(&stream)?;
    Ok((video, ensure_channel(store, video, stream).await?))
}

/// `GET /api/livestream/{id}/ingest`: the instructor's ingest URL, key, state and the
/// push's health.
pub async fn ingest(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<IngestInfo, ApiError> {
    let (video, stream) = own_channel(store, video, who, stream_id).await?;
    let health = match (&stream.channel_arn, stream.ingest.state) {
        (Some(arn), IngestState::Connected) => video.health(arn).await?,
        _ => None,
    };
    ingest_info(&stream, health)
}

/// `POST /api/livestream/{id}/stream-key`: a new key; the old one stops working at
/// once and an encoder on it is cut off.
pub async fn rotate_key(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<IngestInfo, ApiError> {
    let (video, stream) = own_channel(store, video, who, stream_id).await?;
    let arn = stream
        .channel_arn
        .clone()
        .ok_or_else(|| ApiError::Internal("a stream without a channel".into()))?;
    let key = video.replace_key(&arn).await?;
    let stored = store
        .replace_stream_key(&stream.id, &arn, &key, now())
        .await?;
    ingest_info(&stored, None)
}

/// `GET /api/livestream/{id}/playback`: the live playlist for anyone who may watch; a
/// private stream's with a short-lived token for this viewer only.
pub async fn playback(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<Playback, ApiError> {
    let video = video_required(video)?;
    let stream = load_visible(store, who, stream_id).await?;
    access::require_open(&stream)?;
    let stream = ensure_channel(store, video, stream).await?;
    let (Some(arn), Some(url)) = (&stream.channel_arn, &stream.playback_url) else {
        return Err(ApiError::Internal("a stream without a channel".into()));
    };
    let (playback_url, token, expires_at) = if stream.is_public {
        (url.clone(), None, None)
    } else {
        let (token, expires_at) = video.viewer_token(arn, &who.user_id, now()).await?;
        (
            format!("{url}?token={token}"),
            Some(token),
            Some(expires_at),
        )
    };
    Ok(Playback {
        playback_url,
        token,
        expires_at,
        status: stream.status,
        ingest_state: stream.ingest.state,
    })
}

/// After settings changed: the channel carries the new quality, privacy and recording.
pub async fn follow_settings(
    video: &Video,
    before: &Stream,
    after: &Stream,
) -> Result<(), ApiError> {
    let relevant = |s: &Stream| (s.quality_settings, s.is_public, s.is_recording);
    match &after.channel_arn {
        Some(arn) if relevant(before) != relevant(after) => video.update_channel(arn, after).await,
        _ => Ok(()),
    }
}

/// How long a channel outlives its class: late events still find their stream, and an
/// operator can still look at the channel's last session.
pub const CHANNEL_RETENTION: chrono::Duration = chrono::Duration::hours(1);

/// At the end of a class (stop or cancel): the encoder is cut off, its key refuses new
/// pushes, and the channel is deleted [`CHANNEL_RETENTION`] later by the sweeper.
///
/// Each step is tried whatever the one before did (a key that could not be revoked
/// still leaves its channel to be deleted, which revokes it); the first failure is
/// returned.
pub async fn retire(store: &Store, video: &Video, stream: &Stream) -> Result<(), ApiError> {
    let mut outcome = Ok(());
    if let Some(key) = &stream.stream_key_arn {
        outcome = outcome.and(video.revoke_key(key).await);
    }
    if let Some(arn) = &stream.channel_arn {
        outcome = outcome.and(video.cut_off(arn).await);
        outcome = outcome.and(
            store
                .retire_channel(arn, now() + CHANNEL_RETENTION)
                .await
                .map_err(ApiError::from),
        );
    }
    outcome
}

/// Deletes the channels whose class ended more than [`CHANNEL_RETENTION`] ago (the
/// sweeper, at `now`); how many it deleted.
pub async fn delete_retired_channels(
    store: &Store,
    video: Option<&Video>,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let Some(video) = video else {
        return Ok(0);
    };
    let mut deleted = 0;
    for arn in store.channels_to_delete(now).await? {
        // Cut off again: a channel still broadcasting cannot be deleted.
        let result = async {
            video.cut_off(&arn).await?;
            video.delete_channel(&arn).await?;
            store.forget_channel(&arn).await.map_err(ApiError::from)
        }
        .await;
        match result {
            Ok(()) => deleted += 1,
            // One channel that cannot go now must not hold back the others; it is
            // tried again at the next sweep.
            Err(e) => tracing::warn!(channel = %arn, error = %e, "retired channel not deleted"),
        }
    }
    Ok(deleted)
}

/// Applies one "IVS Stream State Change" event to its stream. Idempotent, and an event
/// that arrives late, twice or out of order never overrides a newer state.
pub async fn on_stream_state_change(
    store: &Store,
    video: Option<&Video>,
    event: &StreamStateEvent,
) -> Result<EventOutcome, ApiError> {
    let Some(channel_arn) = event.resources.as_ref().and_then(|r| r.first()) else {
        return Err(ApiError::bad_request(
            "invalid_event",
            "the event names no channel",
        ));
    };
    let Some(stream_id) = store.stream_of_channel(channel_arn).await? else {
        return Ok(EventOutcome::UnknownChannel);
    };
    let Some(stream) = store.stream(&stream_id).await? else {
        return Ok(EventOutcome::UnknownChannel);
    };
    let at = event.time.unwrap_or_else(now);
    let session = event.detail.stream_id.clone();
    let grace = video
        .map(|v| v.reconnect_grace)
        .unwrap_or(crate::video::DEFAULT_RECONNECT_GRACE);
    let (ingest, only_session) = match event.detail.event_name.as_str() {
        "Stream Start" | "Stream Takeover" => {
            if stream.status.is_finished() {
                if let Some(video) = video {
                    video.cut_off(channel_arn).await?;
                }
                return Ok(EventOutcome::CutOff);
            }
            (
                Ingest {
                    state: IngestState::Connected,
                    session_id: session,
                    changed_at: Some(at),
                    reconnect_deadline: None,
                },
                None,
            )
        }
        "Stream End" | "Stream Failure" => {
            let state = if stream.status == StreamStatus::Live {
                IngestState::Reconnecting
            } else {
                IngestState::Idle
            };
            let deadline = (state == IngestState::Reconnecting)
                .then(|| at + chrono::Duration::from_std(grace).unwrap_or_default());
            (
                Ingest {
                    state,
                    session_id: session.clone(),
                    changed_at: Some(at),
                    reconnect_deadline: deadline,
                },
                session,
            )
        }
        _ => return Ok(EventOutcome::Ignored),
    };
    let recorded = match store
        .record_ingest(&stream.id, &ingest, at, only_session.as_deref())
        .await
    {
        Ok(stream) => stream,
        Err(StoreError::ConditionFailed) => return Ok(EventOutcome::Ignored),
        Err(e) => return Err(e.into()),
    };
    if recorded.ingest.state == IngestState::Connected && recorded.status == StreamStatus::Scheduled
    {
        return match store.start_stream(&recorded.id, now(), true).await {
            Ok(_) => Ok(EventOutcome::WentLive),
            // Started by hand (or by a copy of this event) meanwhile: the class is live.
            Err(StoreError::ConditionFailed) => Ok(EventOutcome::Recorded),
            Err(e) => Err(e.into()),
        };
    }
    Ok(EventOutcome::Recorded)
}

/// Any event of the video service: the `video-events` function is given the stream
/// state changes and the recording state changes of the account's channels.
pub type VideoEvent = aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>;

/// `detail-type` of the ingest's events.
pub const STREAM_STATE_CHANGE: &str = "IVS Stream State Change";
/// `detail-type` of the recordings' events.
pub const RECORDING_STATE_CHANGE: &str = "IVS Recording State Change";

/// Applies one video service event to its stream, by its kind (`detail-type`); other
/// kinds are ignored.
pub async fn on_video_event(
    store: &Store,
    video: Option<&Video>,
    event: &VideoEvent,
) -> Result<EventOutcome, ApiError> {
    fn typed<T: serde::de::DeserializeOwned>(event: &VideoEvent) -> Result<T, ApiError> {
        serde_json::to_value(event)
            .and_then(serde_json::from_value)
            .map_err(|e| ApiError::bad_request("invalid_event", format!("{e}")))
    }
    match event.detail_type.as_str() {
        STREAM_STATE_CHANGE => on_stream_state_change(store, video, &typed(event)?).await,
        RECORDING_STATE_CHANGE => {
            super::recording::on_recording_state_change(store, &typed(event)?).await
        }
        _ => Ok(EventOutcome::Ignored),
    }
}
