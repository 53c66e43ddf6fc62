//! A class's recording: the video service's "IVS Recording State Change" events drive
//! its state on the stream item; viewers get a playlist URL that works without an
//! `Authorization` header, and the instructor can delete it.
//!
//! The video service records a channel to S3 while its encoder pushes and keeps the
//! recording open for its reconnect window after the push stops, so an encoder that
//! reconnects within it stays one recording (one recording session). The class's
//! recording is its latest recording session.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::recording::RecordingChange;
use crate::model::{Recording, RecordingState, Stream, now, parse_id};
use crate::recordings::{Recordings, token_lifetime};
use crate::store::{Store, StoreError};

use super::access::{load, load_owned, load_visible};
use super::video::EventOutcome;

/// `detail` of an "IVS Recording State Change" event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RecordingStateChange {
    /// `Recording Start`, `Recording End`, `Recording Start Failure`,
    /// `Recording End Failure`.
    pub recording_status: String,
    #[serde(default)]
    pub recording_status_reason: Option<String>,
    #[serde(default)]
    pub recording_s3_bucket_name: Option<String>,
    /// `ivs/v1/{account}/{channel}/{Y}/{M}/{D}/{h}/{m}/{recording id}`.
    #[serde(default)]
    pub recording_s3_key_prefix: Option<String>,
    #[serde(default)]
    pub recording_duration_ms: Option<i64>,
    #[serde(default)]
    pub recording_session_id: Option<String>,
    #[serde(default)]
    pub channel_name: Option<String>,
    /// The push (stream session) the event came with.
    #[serde(default)]
    pub stream_id: Option<String>,
}

/// The EventBridge event of a recording state change.
pub type RecordingStateEvent =
    aws_lambda_events::eventbridge::EventBridgeEvent<RecordingStateChange>;

/// The event's facts a recording is built from.
#[derive(Debug, Clone)]
pub struct RecordingEvent {
    pub change: RecordingChange,
    pub session_id: String,
    pub bucket: String,
    pub key_prefix: String,
    pub at: DateTime<Utc>,
}

impl RecordingEvent {
    /// The facts of an event; `None` for a status this code does not know.
    pub fn parse(event: &RecordingStateEvent) -> Result<Option<Self>, ApiError> {
        let detail = &event.detail;
        let reason = || {
            detail
                .recording_status_reason
                .clone()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "the video service gave no reason".into())
        };
        let change = match detail.recording_status.as_str() {
            "Recording Start" => RecordingChange::Started,
            "Recording End" => RecordingChange::Ended {
                duration_ms: detail.recording_duration_ms.filter(|ms| *ms >= 0),
            },
            "Recording Start Failure" | "Recording End Failure" => {
                RecordingChange::Failed { reason: reason() }
            }
            _ => return Ok(None),
        };
        let field = |value: &Option<String>, name: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ApiError::bad_request("invalid_event", format!("no {name}")))
        };
        Ok(Some(Self {
            change,
            session_id: field(&detail.recording_session_id, "recording_session_id")?,
            bucket: field(&detail.recording_s3_bucket_name, "recording_s3_bucket_name")?,
            key_prefix: field(&detail.recording_s3_key_prefix, "recording_s3_key_prefix")?
                .trim_end_matches('/')
                .to_string(),
            at: event.time.unwrap_or_else(now),
        }))
    }
}

/// The recording after `event`, or `None` when the event changes nothing: a repeat, an
/// event older than the one applied, a start of the recording session already open
/// (the encoder reconnected within the reconnect window), any event of a recording
/// the instructor deleted, or an event of an older recording session.
pub fn apply(previous: Option<&Recording>, event: &RecordingEvent) -> Option<Recording> {
    let at_ms = event.at.timestamp_millis();
    let fresh = |state, started_at, ended_at, duration_ms, failure_reason| Recording {
        state,
        session_id: event.session_id.clone(),
        bucket: event.bucket.clone(),
        key_prefix: event.key_prefix.clone(),
        started_at,
        ended_at,
        duration_ms,
        failure_reason,
        event_ms: at_ms,
    };
    let from_nothing = || match &event.change {
        RecordingChange::Started => {
            fresh(RecordingState::Recording, Some(event.at), None, None, None)
        }
        RecordingChange::Ended { duration_ms } => fresh(
            RecordingState::Ready,
            // The start was missed (or is late): the end and the length tell it.
            duration_ms.map(|ms| event.at - chrono::Duration::milliseconds(ms)),
            Some(event.at),
            *duration_ms,
            None,
        ),
        RecordingChange::Failed { reason } => fresh(
            RecordingState::Failed,
            Some(event.at),
            None,
            None,
            Some(reason.clone()),
        ),
    };
    let Some(previous) = previous else {
        return Some(from_nothing());
    };
    if previous.session_id != event.session_id {
        // Another recording session: only a newer one replaces the class's recording.
        return (at_ms > previous.event_ms).then(from_nothing);
    }
    if previous.state == RecordingState::None || at_ms < previous.event_ms {
        return None;
    }
    let next = match &event.change {
        RecordingChange::Started => return None,
        RecordingChange::Ended { duration_ms } => Recording {
            state: RecordingState::Ready,
            ended_at: Some(event.at),
            duration_ms: *duration_ms,
            failure_reason: None,
            event_ms: at_ms,
            started_at: previous
                .started_at
                .or_else(|| duration_ms.map(|ms| event.at - chrono::Duration::milliseconds(ms))),
            ..previous.clone()
        },
        RecordingChange::Failed { reason } => Recording {
            state: RecordingState::Failed,
            failure_reason: Some(reason.clone()),
            event_ms: at_ms,
            ..previous.clone()
        },
    };
    let same = |r: &Recording| (r.state, r.duration_ms, r.failure_reason.clone());
    (same(&next) != same(previous)).then_some(next)
}

/// A read-then-write that lost a race is tried again this many times.
const CONFLICT_RETRIES: usize = 5;

/// Applies one "IVS Recording State Change" event to the stream of its channel.
/// Idempotent and order-safe: see [`apply`].
pub async fn on_recording_state_change(
    store: &Store,
    event: &RecordingStateEvent,
) -> Result<EventOutcome, ApiError> {
    let Some(channel_arn) = event.resources.as_ref().and_then(|r| r.first()) else {
        return Err(ApiError::bad_request(
            "invalid_event",
            "the event names no channel",
        ));
    };
    let Some(facts) = RecordingEvent::parse(event)? else {
        return Ok(EventOutcome::Ignored);
    };
    let Some(stream_id) = store.stream_of_channel(channel_arn).await? else {
        return Ok(EventOutcome::UnknownChannel);
    };
    for _ in 0..CONFLICT_RETRIES {
        let Some(stream) = store.stream(&stream_id).await? else {
            return Ok(EventOutcome::UnknownChannel);
        };
        let Some(next) = apply(stream.recording.as_ref(), &facts) else {
            return Ok(EventOutcome::Ignored);
        };
        match store
            .replace_recording(&stream_id, &next, stream.recording.as_ref())
            .await
        {
            Ok(_) => return Ok(EventOutcome::Recorded),
            // Another event or a deletion wrote first: decide again on what it wrote.
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(format!(
        "the recording of stream {stream_id} kept changing"
    )))
}

/// `GET /api/livestream/{id}/recording`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(example = recording_example())]
pub struct RecordingView {
    pub stream_id: String,
    pub state: RecordingState,
    /// When the video service started writing it: offset 0 of the replay.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Its length, once `ready`.
    pub duration_ms: Option<i64>,
    /// Why it `failed`.
    pub failure_reason: Option<String>,
    /// The HLS playlist to play (VOD once `ready`; an EVENT playlist that grows while
    /// `recording` or `processing`), with a token for you only: no `Authorization`
    /// header needed. `null` when there is nothing to play.
    pub playback_url: Option<String>,
    /// A still of the class (JPEG), a presigned URL.
    pub thumbnail_url: Option<String>,
    /// When `playback_url` and `thumbnail_url` stop working: ask again before then.
    pub expires_at: Option<DateTime<Utc>>,
}

fn recording_example() -> serde_json::Value {
    serde_json::json!({
        "stream_id": "01JD7QA2B3C4D5E6F7G8H9J0KM",
        "state": "ready",
        "started_at": "2030-01-31T09:01:10.412Z",
        "ended_at": "2030-01-31T10:02:41.003Z",
        "duration_ms": 3_630_591,
        "failure_reason": null,
        "playback_url": "https://abc123.execute-api.us-east-1.amazonaws.com/api/livestream/01JD7QA2B3C4D5E6F7G8H9J0KM/recording/playlist.m3u8?token=eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "thumbnail_url": "https://livestream-recordings.s3.us-east-1.amazonaws.com/ivs/v1/123456789012/AbCdEf123456/2030/1/31/9/1/x1y2z3/media/thumbnails/720p30/thumb0.jpg?X-Amz-Signature=...",
        "expires_at": "2030-01-31T12:32:00Z"
    })
}

impl RecordingView {
    fn nothing(stream_id: &str) -> Self {
        Self {
            stream_id: stream_id.to_string(),
            state: RecordingState::None,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            failure_reason: None,
            playback_url: None,
            thumbnail_url: None,
            expires_at: None,
        }
    }

    fn of(stream: &Stream) -> Self {
        let Some(recording) = stream.recording.as_ref() else {
            return Self::nothing(&stream.id);
        };
        let state = recording.state_for(stream.status.is_finished());
        if state == RecordingState::None {
            return Self::nothing(&stream.id);
        }
        Self {
            stream_id: stream.id.clone(),
            state,
            started_at: recording.started_at,
            ended_at: recording.ended_at,
            duration_ms: recording.duration_ms,
            failure_reason: recording.failure_reason.clone(),
            playback_url: None,
            thumbnail_url: None,
            expires_at: None,
        }
    }
}

/// Whether a recording in `state` has something to play.
fn playable(state: RecordingState) -> bool {
    matches!(
        state,
        RecordingState::Recording | RecordingState::Processing | RecordingState::Ready
    )
}

/// The key of a recording's master playlist.
pub fn master_key(key_prefix: &str) -> String {
    format!("{key_prefix}/media/hls/master.m3u8")
}

/// The path of `get-recording-playlist` for a stream.
pub fn playlist_path(stream_id: &str) -> String {
    format!("/api/livestream/{stream_id}/recording/playlist.m3u8")
}

/// `GET /api/livestream/{id}/recording`: for whoever may watch the stream; the URL of
/// the playlist carries a token for this viewer, `api_origin` (`https://host`) is where
/// this API answers.
pub async fn get(
    store: &Store,
    recordings: Option<&Recordings>,
    who: &Identity,
    stream_id: &str,
    api_origin: &str,
) -> Result<RecordingView, ApiError> {
    let stream = load_visible(store, who, stream_id).await?;
    let mut view = RecordingView::of(&stream);
    let (Some(recordings), Some(recording)) = (recordings, stream.recording.as_ref()) else {
        return Ok(view);
    };
    if !playable(view.state) {
        return Ok(view);
    }
    let issued = now();
    let lifetime = token_lifetime(
        (view.state == RecordingState::Ready)
            .then_some(recording.duration_ms)
            .flatten(),
    );
    let expires_at = issued + chrono::Duration::from_std(lifetime).unwrap_or_default();
    let token = recordings
        .sign_token(
            &stream.id,
            &who.user_id,
            &recording.session_id,
            issued,
            expires_at,
        )
        .await?;
    view.playback_url = Some(format!(
        "{}{}?token={token}",
        api_origin.trim_end_matches('/'),
        playlist_path(&stream.id)
    ));
    view.expires_at = Some(expires_at);
    // A still is decoration: a storage that cannot be read now leaves it out rather
    // than the recording.
    view.thumbnail_url = match thumbnail_key(recordings, recording).await {
        Ok(Some(key)) => Some(
            recordings
                .presigned_get(&recording.bucket, &key, lifetime)
                .await?,
        ),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(stream = %stream.id, error = %e, "no thumbnail for the recording");
            None
        }
    };
    Ok(view)
}

/// The first still of the top rendition (`media/thumbnails/{rendition}/thumb0.jpg`),
/// once the master playlist names its renditions.
async fn thumbnail_key(
    recordings: &Recordings,
    recording: &Recording,
) -> Result<Option<String>, ApiError> {
    let Some(master) = recordings
        .read_text(&recording.bucket, &master_key(&recording.key_prefix))
        .await?
    else {
        return Ok(None);
    };
    Ok(top_rendition(&master).and_then(|uri| {
        let rendition = uri
            .split('/')
            .next()
            .filter(|r| !r.is_empty() && *r != "..")?;
        Some(format!(
            "{}/media/thumbnails/{rendition}/thumb0.jpg",
            recording.key_prefix
        ))
    }))
}

/// `GET /api/livestream/{id}/recording/playlist.m3u8?token=`: the recording's media
/// playlist (its top rendition) with every URI presigned for as long as the token
/// plays. Authenticated by the token alone.
pub async fn playlist(
    store: &Store,
    recordings: Option<&Recordings>,
    stream_id: &str,
    token: Option<&str>,
) -> Result<String, ApiError> {
    let id = parse_id(stream_id, "stream")?;
    let Some(recordings) = recordings else {
        return Err(ApiError::NotFound("recording"));
    };
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::forbidden(
            "invalid_recording_token",
            "the playlist needs the token of GET /api/livestream/{id}/recording",
        )
    })?;
    let grant = recordings.verify_token(token, &id).await?;
    let stream = load(store, &id).await?;
    let recording = stream
        .recording
        .as_ref()
        .filter(|r| r.session_id == grant.session_id)
        .filter(|r| playable(r.state_for(stream.status.is_finished())))
        .ok_or(ApiError::NotFound("recording"))?;
    let master_key = master_key(&recording.key_prefix);
    let master = recordings
        .read_text(&recording.bucket, &master_key)
        .await?
        .ok_or(ApiError::NotFound("recording"))?;
    let (media_key, media) = match top_rendition(&master) {
        Some(uri) => {
            let key = resolve(&master_key, &uri);
            let text = recordings
                .read_text(&recording.bucket, &key)
                .await?
                .ok_or(ApiError::NotFound("recording"))?;
            (key, text)
        }
        // A master that is itself a media playlist.
        None => (master_key, master),
    };
    let valid_for = (grant.expires_at - now())
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    let mut uris = Vec::new();
    for uri in playlist_uris(&media) {
        let url = recordings
            .presigned_get(&recording.bucket, &resolve(&media_key, &uri), valid_for)
            .await?;
        uris.push((uri, url));
    }
    Ok(rewrite_playlist(&media, |uri| {
        uris.iter()
            .find(|(from, _)| from == uri)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| uri.to_string())
    }))
}

/// `DELETE /api/livestream/{id}/recording`: the instructor deletes the recording's
/// objects and the recording reads `none` from then on. Not while the video service
/// still writes it (409 `recording_in_progress`). Deleting again changes nothing.
pub async fn delete(
    store: &Store,
    recordings: Option<&Recordings>,
    who: &Identity,
    stream_id: &str,
) -> Result<RecordingView, ApiError> {
    let mut stream = load_owned(store, who, stream_id).await?;
    for _ in 0..CONFLICT_RETRIES {
        let Some(recording) = stream.recording.clone() else {
            return Ok(RecordingView::nothing(&stream.id));
        };
        match recording.state_for(stream.status.is_finished()) {
            RecordingState::None => return Ok(RecordingView::nothing(&stream.id)),
            RecordingState::Recording | RecordingState::Processing => {
                return Err(ApiError::conflict(
                    "recording_in_progress",
                    "the video service is still writing the recording: delete it once it is ready",
                ));
            }
            RecordingState::Ready | RecordingState::Failed => {}
        }
        let recordings = recordings.ok_or_else(|| {
            ApiError::conflict(
                "recordings_unavailable",
                "this deployment has no recordings' storage configured",
            )
        })?;
        // The objects first: a failure after them leaves a recording that says
        // `ready` and a DELETE that, tried again, deletes nothing and finishes.
        let deleted = recordings
            .delete_prefix(&recording.bucket, &recording.key_prefix)
            .await?;
        let gone = Recording {
            state: RecordingState::None,
            ..recording.clone()
        };
        match store
            .replace_recording(&stream.id, &gone, Some(&recording))
            .await
        {
            Ok(_) => {
                tracing::info!(stream = %stream.id, objects = deleted, "recording deleted");
                return Ok(RecordingView::nothing(&stream.id));
            }
            Err(StoreError::ConditionFailed) => {
                stream = load(store, &stream.id).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(format!(
        "the recording of stream {} kept changing",
        stream.id
    )))
}

/// The URI of a master playlist's variant with the highest `BANDWIDTH`; `None` when
/// the playlist has no variants (it is a media playlist).
pub fn top_rendition(master: &str) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    let mut pending: Option<u64> = None;
    for line in master.lines().map(str::trim) {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            pending = Some(
                attribute(attributes, "BANDWIDTH")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0),
            );
        } else if !line.is_empty()
            && !line.starts_with('#')
            && let Some(bandwidth) = pending.take()
            && best.as_ref().is_none_or(|(b, _)| bandwidth > *b)
        {
            best = Some((bandwidth, line.to_string()));
        }
    }
    best.map(|(_, uri)| uri)
}

/// An attribute's value in an attribute list (`A=1,B="x,y"`), quotes removed.
fn attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if key.trim() == name {
            return Some(value.to_string());
        }
        rest = next;
    }
    None
}

/// The key `uri` names relative to the object `base_key` (`a/b/master.m3u8` +
/// `720p30/playlist.m3u8` = `a/b/720p30/playlist.m3u8`; `..` goes up; a query is
/// dropped).
pub fn resolve(base_key: &str, uri: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let mut parts: Vec<&str> = match uri.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => {
            let mut parts: Vec<&str> = base_key.split('/').collect();
            parts.pop();
            parts
        }
    };
    for segment in uri.trim_start_matches('/').split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Whether a URI in a playlist is already absolute (`https://...`): left as it is.
fn is_absolute(uri: &str) -> bool {
    uri.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphabetic())
    })
}

/// Every relative URI of a media playlist, in order: `URI="..."` attributes (the
/// fMP4 init section of `EXT-X-MAP`) and segment lines.
pub fn playlist_uris(playlist: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in playlist.lines().map(str::trim) {
        let uri = if line.starts_with('#') {
            uri_attribute(line).map(|(start, end)| line[start..end].to_string())
        } else if !line.is_empty() {
            Some(line.to_string())
        } else {
            None
        };
        if let Some(uri) = uri.filter(|u| !is_absolute(u))
            && !uris.contains(&uri)
        {
            uris.push(uri);
        }
    }
    uris
}

/// The byte range of the value of a tag line's `URI="..."` attribute.
fn uri_attribute(line: &str) -> Option<(usize, usize)> {
    let start = line.find("URI=\"")? + "URI=\"".len();
    let len = line[start..].find('"')?;
    Some((start, start + len))
}

/// A media playlist with each relative URI replaced by `url(uri)`, and its type said:
/// `VOD` once it has its end (`EXT-X-ENDLIST`), `EVENT` while it still grows (players
/// then reload it and keep what they had), unless it says one itself.
pub fn rewrite_playlist(playlist: &str, url: impl Fn(&str) -> String) -> String {
    let ended = playlist.lines().any(|l| l.trim() == "#EXT-X-ENDLIST");
    let typed = playlist
        .lines()
        .any(|l| l.trim().starts_with("#EXT-X-PLAYLIST-TYPE:"));
    let mut out = String::with_capacity(playlist.len() * 4);
    for line in playlist.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            match uri_attribute(trimmed) {
                Some((start, end)) if !is_absolute(&trimmed[start..end]) => {
                    out.push_str(&trimmed[..start]);
                    out.push_str(&url(&trimmed[start..end]));
                    out.push_str(&trimmed[end..]);
                }
                _ => out.push_str(trimmed),
            }
            out.push('\n');
            if trimmed == "#EXTM3U" && !typed {
                out.push_str(if ended {
                    "#EXT-X-PLAYLIST-TYPE:VOD\n"
                } else {
                    "#EXT-X-PLAYLIST-TYPE:EVENT\n"
                });
            }
        } else if trimmed.is_empty() {
            out.push('\n');
        } else if is_absolute(trimmed) {
            out.push_str(trimmed);
            out.push('\n');
        } else {
            out.push_str(&url(trimmed));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_uris_resolve_against_the_playlists_key() {
        assert_eq!(
            resolve("p/media/hls/master.m3u8", "720p30/playlist.m3u8"),
            "p/media/hls/720p30/playlist.m3u8"
        );
        assert_eq!(
            resolve("p/media/hls/720p30/playlist.m3u8", "../160p30/0.mp4?x=1"),
            "p/media/hls/160p30/0.mp4"
        );
        assert_eq!(resolve("p/a.m3u8", "/root/x.mp4"), "root/x.mp4");
    }

    #[test]
    fn attributes_are_read_with_quoted_commas() {
        let list = r#"CODECS="avc1.64001f,mp4a.40.2",BANDWIDTH=2500000,RESOLUTION=1280x720"#;
        assert_eq!(attribute(list, "BANDWIDTH").as_deref(), Some("2500000"));
        assert_eq!(
            attribute(list, "CODECS").as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
        assert_eq!(attribute(list, "NAME"), None);
    }
}
