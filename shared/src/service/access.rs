//! Who may see and change a stream, and the stream-state rules every participation
//! checks first: the bottom of the service layer, which every rule module uses.

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::{Stream, StreamStatus, parse_id};
use crate::store::Store;

/// Loads a stream or answers 404.
pub async fn load(store: &Store, stream_id: &str) -> Result<Stream, ApiError> {
    let id = parse_id(stream_id, "stream")?;
    store.stream(&id).await?.ok_or(ApiError::NotFound("stream"))
}

/// Loads a stream with its chat's counters (see `Store::stream_with_chat`).
pub async fn load_with_chat(store: &Store, stream_id: &str) -> Result<Stream, ApiError> {
    let id = parse_id(stream_id, "stream")?;
    store
        .stream_with_chat(&id)
        .await?
        .ok_or(ApiError::NotFound("stream"))
}

pub fn is_owner(who: &Identity, stream: &Stream) -> bool {
    stream.instructor_id == who.user_id
}

/// May `who` see this stream? Public streams: everyone signed in. Private streams:
/// the instructor, admins and students enrolled in the stream's course.
pub async fn can_view(store: &Store, who: &Identity, stream: &Stream) -> Result<bool, ApiError> {
    if stream.is_public {
        return Ok(true);
    }
    may_view_private(store, who, stream).await
}

/// The lifecycle rule for reads that precede a write: an ended or cancelled stream's
/// class no longer changes. (The write itself carries the same condition, so a stop
/// racing the request is caught there.)
pub fn require_open(stream: &Stream) -> Result<(), ApiError> {
    if stream.status.is_finished() {
        Err(ApiError::stream_finished())
    } else {
        Ok(())
    }
}

/// Participation that needs a live stream: `stream_finished` after the end,
/// `stream_not_live` before the start.
pub fn require_live(status: StreamStatus, what: &str) -> Result<(), ApiError> {
    match status {
        StreamStatus::Live => Ok(()),
        s if s.is_finished() => Err(ApiError::stream_finished()),
        s => Err(ApiError::conflict(
            "stream_not_live",
            format!("{what} only while the stream is live; it is {}", s.as_str()),
        )),
    }
}

/// May `who` watch this stream if it is (or turns) private: the instructor, admins and
/// students enrolled in its course.
pub async fn may_view_private(
    store: &Store,
    who: &Identity,
    stream: &Stream,
) -> Result<bool, ApiError> {
    if is_owner(who, stream) || who.is_admin() {
        return Ok(true);
    }
    Ok(store
        .enrollment(&stream.course_id, &who.user_id)
        .await?
        .is_some())
}

/// Loads a stream the caller may see.
pub async fn load_visible(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    visible(store, who, load(store, stream_id).await?).await
}

/// The stream, if the caller may see it.
pub async fn visible(store: &Store, who: &Identity, stream: Stream) -> Result<Stream, ApiError> {
    if !can_view(store, who, &stream).await? {
        return Err(private_stream());
    }
    Ok(stream)
}

/// The refusal of a private stream to someone outside its course.
pub fn private_stream() -> ApiError {
    ApiError::forbidden(
        "stream_private",
        "this stream is private to the students of its course",
    )
}

/// Loads a stream the caller owns.
pub async fn load_owned(
    store: &Store,
    who: &Identity,
    stream_id: &str,
) -> Result<Stream, ApiError> {
    let stream = load(store, stream_id).await?;
    if !is_owner(who, &stream) {
        return Err(ApiError::forbidden(
            "not_stream_owner",
            "only the stream's instructor can do this",
        ));
    }
    Ok(stream)
}
