//! Stream management: create, read, list, update, start, stop, cancel.

use crate::auth::{Identity, Role};
use crate::error::ApiError;
use crate::model::stream::{CreateStreamInput, UpdateStreamInput};
use crate::model::{Stream, StreamStatus, new_id, now};
use crate::store::{Page, Store, StoreError};
use crate::video::Video;

use super::PageRequest;
use super::access::{is_owner, load, load_owned, load_with_chat, visible};

/// A fresh ingest key: 192 random bits, URL-safe.
fn new_stream_key() -> String {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    format!(
        "sk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `POST /api/livestream/`: a teacher schedules a stream of one of their courses.
///
/// With video, its channel is created at once, so the instructor has the ingest URL
/// and key in the answer; quality settings the video service cannot carry are a 422.
pub async fn create(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    input: CreateStreamInput,
) -> Result<Stream, ApiError> {
    if who.role != Role::Teacher {
        return Err(ApiError::forbidden(
            "teacher_only",
            "only teachers can create streams",
        ));
    }
    let now = now();
    let new = input.validate(now)?;
    if let Some(video) = video {
        video.limits.check(&new.quality_settings)?;
    }
    let course = store
        .course(&new.course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if course.teacher_id != who.user_id {
        return Err(ApiError::forbidden(
            "not_course_teacher",
            "you can only create streams for courses you teach",
        ));
    }
    let stream = Stream {
        id: new_id(),
        title: new.title,
        description: new.description,
        course_id: course.id,
        instructor_id: who.user_id.clone(),
        status: StreamStatus::Scheduled,
        stream_key: new_stream_key(),
        viewer_count: 0,
        max_viewers: 0,
        unique_viewers: 0,
        total_watch_seconds: 0,
        scheduled_at: new.scheduled_at,
        started_at: None,
        ended_at: None,
        duration: None,
        quality_settings: new.quality_settings,
        is_public: new.is_public,
        is_recording: new.is_recording,
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    store.create_stream(&stream).await?;
    let Some(video) = video else {
        return Ok(stream);
    };
    // The stream exists whatever the video service says: a channel it could not make
    // now is made by the first request that needs it (`/ingest`, `/playback`).
    let id = stream.id.clone();
    match super::video::ensure_channel(store, video, stream).await {
        Ok(stream) => Ok(stream),
        Err(err) => {
            tracing::warn!(stream = %id, error = %err, "channel not created with its stream");
            load(store, &id).await
        }
    }
}

/// `PUT /api/livestream/{id}`: the instructor changes details, not after the end.
///
/// With video, quality settings its service cannot carry are a 422, and the channel
/// follows the new settings (type, private playback, recording).
pub async fn update(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
    input: UpdateStreamInput,
) -> Result<Stream, ApiError> {
    let current = load_owned(store, who, stream_id).await?;
    ensure_editable(&current)?;
    let changes = input.validate(&current, now())?;
    if changes.is_empty() {
        return Ok(store.with_chat(current).await?);
    }
    if let Some(video) = video {
        if let Some(quality) = &changes.quality_settings {
            video.limits.check(quality)?;
        }
        // The channel first: a refusal of the video service leaves the stream as it was.
        super::video::follow_settings(video, &current, &changes.applied_to(&current)).await?;
    }
    match store
        .update_stream_details(&current.id, &changes, now())
        .await
    {
        Ok(stream) => Ok(store.with_chat(stream).await?),
        Err(StoreError::ConditionFailed) => {
            let latest = load(store, stream_id).await?;
            ensure_editable(&latest)?;
            Err(ApiError::conflict(
                "stream_not_scheduled",
                format!(
                    "the schedule can no longer change: the stream is {}",
                    latest.status.as_str()
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn ensure_editable(stream: &Stream) -> Result<(), ApiError> {
    match stream.status {
        StreamStatus::Scheduled | StreamStatus::Live => Ok(()),
        other => Err(ApiError::conflict(
            "stream_finished",
            format!(
                "a stream that is {} can no longer be changed",
                other.as_str()
            ),
        )),
    }
}

/// The conflict for a transition attempted from the wrong state.
async fn wrong_state(
    store: &Store,
    stream_id: &str,
    expected: StreamStatus,
    action: &str,
) -> ApiError {
    let current = match load(store, stream_id).await {
        Ok(stream) => stream.status.as_str(),
        Err(e) => return e,
    };
    let code = match expected {
        StreamStatus::Live => "stream_not_live",
        _ => "stream_not_scheduled",
    };
    ApiError::conflict(
        code,
        format!(
            "only a {} stream can be {action}; this one is {current}",
            expected.as_str()
        ),
    )
}

/// `POST /api/livestream/{id}/start`: scheduled -> live. Concurrent starts: one wins.
pub async fn start(store: &Store, who: &Identity, stream_id: &str) -> Result<Stream, ApiError> {
    let stream = load_owned(store, who, stream_id).await?;
    match store.start_stream(&stream.id, now(), false).await {
        Err(StoreError::ConditionFailed) => {
            Err(wrong_state(store, &stream.id, StreamStatus::Scheduled, "started").await)
        }
        other => Ok(other?),
    }
}

/// `POST /api/livestream/{id}/stop`: live -> ended, with the duration. Everyone stops
/// watching at `ended_at` (the count goes to 0; peak and unique viewers stay), then
/// the final statistics are written. The broadcaster then sends `stream.status` and
/// closes the stream's sockets. The answer is what a GET returns next.
///
/// With video, the encoder is cut off and its key refuses new pushes.
pub async fn stop(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    let stream = load_owned(store, who, stream_id).await?;
    finish(store, video, &stream, None).await
}

/// Ends a live class (`/stop`, or, with `abandoned_push`, an encoder that did not come
/// back from that push): live -> ended, presence ended, final statistics written, the
/// encoder cut off.
pub async fn finish(
    store: &Store,
    video: Option<&Video>,
    stream: &Stream,
    abandoned_push: Option<&str>,
) -> Result<Stream, ApiError> {
    let Some(started_at) = stream
        .started_at
        .filter(|_| stream.status == StreamStatus::Live)
    else {
        return Err(wrong_state(store, &stream.id, StreamStatus::Live, "stopped").await);
    };
    let mut ended = match store
        .stop_stream(&stream.id, started_at, now(), abandoned_push)
        .await
    {
        Err(StoreError::ConditionFailed) => {
            return Err(wrong_state(store, &stream.id, StreamStatus::Live, "stopped").await);
        }
        other => other?,
    };
    // No chat number can be taken any more: the chat is closed for good and its final
    // count is what it holds, whatever a sender killed mid-send left behind.
    match store.settle_chat(&ended.id, ended.chat_seq).await {
        Ok(messages) => ended.chat_messages_count = messages,
        Err(err) => {
            tracing::error!(stream = %ended.id, error = %err, "chat not settled at the stop")
        }
    }
    super::presence::end_all(store, &ended).await?;
    // The stop stands even if the snapshot fails; the stats endpoint writes it later.
    if let Err(err) = super::stats::write_snapshot(store, &ended).await {
        tracing::error!(stream = %ended.id, error = %err, "final stats snapshot not written");
    }
    if let Some(video) = video {
        // The class has ended whatever the video service says; the key is revoked again
        // when the channel is deleted.
        if let Err(err) = super::video::retire(store, video, &ended).await {
            tracing::error!(stream = %ended.id, error = %err, "encoder not cut off at the stop");
        }
    }
    load(store, &stream.id).await
}

/// `POST /api/livestream/{id}/cancel`: scheduled -> cancelled.
/// With video, the channel's key stops working (nothing will be pushed to it).
pub async fn cancel(
    store: &Store,
    video: Option<&Video>,
    who: &Identity,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    let stream = load_owned(store, who, stream_id).await?;
    let cancelled = match store.cancel_stream(&stream.id, now()).await {
        Err(StoreError::ConditionFailed) => {
            return Err(wrong_state(store, &stream.id, StreamStatus::Scheduled, "cancelled").await);
        }
        other => other?,
    };
    if let Some(video) = video
        && let Err(err) = super::video::retire(store, video, &cancelled).await
    {
        tracing::error!(stream = %cancelled.id, error = %err, "key not revoked at the cancel");
    }
    Ok(cancelled)
}

/// `GET /api/livestream/{id}`.
pub async fn get(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let stream = visible(store, who, load_with_chat(store, stream_id).await?).await?;
    let owner = is_owner(who, &stream);
    Ok(stream.view(owner))
}

/// `GET /api/livestream/active`: live streams the caller may see, newest first.
///
/// Private streams the caller may not see are left out of the page, so a page can
/// hold fewer than `limit` streams while `next_cursor` still leads on.
pub async fn list_live(
    store: &Store,
    who: &Identity,
    page: PageRequest,
) -> Result<Page<serde_json::Value>, ApiError> {
    let (streams, next) = store
        .streams_in_status(StreamStatus::Live, page.cursor.as_ref(), page.limit)
        .await?;
    let needs_enrollments =
        !who.is_admin() && streams.iter().any(|s| !s.is_public && !is_owner(who, s));
    let enrolled = if needs_enrollments {
        store.enrolled_course_ids(&who.user_id).await?
    } else {
        Vec::new()
    };
    let visible = streams
        .into_iter()
        .filter(|s| {
            s.is_public || is_owner(who, s) || who.is_admin() || enrolled.contains(&s.course_id)
        })
        .collect();
    let items = store
        .streams_with_chat(visible)
        .await?
        .into_iter()
        .map(|s| {
            let owner = is_owner(who, &s);
            s.view(owner)
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: next.map(|c| c.encode()),
    })
}

/// `GET /api/livestream/mine`: the calling teacher's streams, all statuses, newest first.
pub async fn list_mine(
    store: &Store,
    who: &Identity,
    page: PageRequest,
) -> Result<Page<serde_json::Value>, ApiError> {
    if who.role != Role::Teacher {
        return Err(ApiError::forbidden(
            "teacher_only",
            "only teachers have streams of their own",
        ));
    }
    let (streams, next) = store
        .streams_of_instructor(&who.user_id, page.cursor.as_ref(), page.limit)
        .await?;
    let streams = store.streams_with_chat(streams).await?;
    Ok(Page {
        items: streams.into_iter().map(|s| s.view(true)).collect(),
        next_cursor: next.map(|c| c.encode()),
    })
}
