//! HLS playback over HTTP: the live playlist, init segments and media segments of
//! each channel, behind the caller's playback authorization.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::Authorize;
use crate::registry::Registry;

const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
const INIT_CONTENT_TYPE: &str = "video/mp4";
const SEGMENT_CONTENT_TYPE: &str = "video/iso.segment";

#[derive(Clone)]
struct Playback {
    registry: Arc<Registry>,
    authorize: Authorize,
}

#[derive(Deserialize)]
struct PlaybackQuery {
    token: Option<String>,
}

/// The files under `/video/{channel_id}/`.
#[derive(Debug, PartialEq, Eq)]
enum HlsFile {
    Playlist,
    Init(u32),
    Segment(u64),
}

impl HlsFile {
    fn parse(name: &str) -> Option<Self> {
        if name == "index.m3u8" {
            return Some(Self::Playlist);
        }
        if let Some(number) = name
            .strip_prefix("init-")
            .and_then(|n| n.strip_suffix(".mp4"))
        {
            return number.parse().ok().map(Self::Init);
        }
        let sequence = name.strip_prefix("seg-")?.strip_suffix(".m4s")?;
        sequence.parse().ok().map(Self::Segment)
    }
}

pub(crate) fn router(registry: Arc<Registry>, authorize: Authorize) -> Router {
    Router::new()
        .route("/video/{channel_id}/{file}", get(serve_file))
        .with_state(Playback {
            registry,
            authorize,
        })
        // Players run on other origins.
        .layer(axum::middleware::map_response(
            |mut response: Response| async move {
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                response
            },
        ))
}

async fn serve_file(
    State(playback): State<Playback>,
    Path((channel_id, file)): Path<(String, String)>,
    Query(query): Query<PlaybackQuery>,
) -> Response {
    let token = query.token.as_deref();
    if !(playback.authorize)(&channel_id, token) {
        return error(
            StatusCode::FORBIDDEN,
            "playback_unauthorized",
            "playback of this channel is not authorized",
        );
    }
    let registry = &playback.registry;
    match HlsFile::parse(&file) {
        Some(HlsFile::Playlist) => match registry.playlist(&channel_id) {
            Some(playlist) => (
                [
                    (header::CONTENT_TYPE, PLAYLIST_CONTENT_TYPE),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                playlist.render(token),
            )
                .into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                "channel_offline",
                "the channel has no live stream",
            ),
        },
        Some(HlsFile::Init(number)) => match registry.init_segment(&channel_id, number) {
            Some(data) => ([(header::CONTENT_TYPE, INIT_CONTENT_TYPE)], data).into_response(),
            None => not_found(),
        },
        Some(HlsFile::Segment(sequence)) => match registry.media_segment(&channel_id, sequence) {
            Some(data) => ([(header::CONTENT_TYPE, SEGMENT_CONTENT_TYPE)], data).into_response(),
            None => not_found(),
        },
        None => not_found(),
    }
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such file (it may have left the live window)",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hls_file_names() {
        assert_eq!(HlsFile::parse("index.m3u8"), Some(HlsFile::Playlist));
        assert_eq!(HlsFile::parse("init-3.mp4"), Some(HlsFile::Init(3)));
        assert_eq!(HlsFile::parse("seg-42.m4s"), Some(HlsFile::Segment(42)));
        assert_eq!(HlsFile::parse("seg-x.m4s"), None);
        assert_eq!(HlsFile::parse("init-1.m4s"), None);
        assert_eq!(HlsFile::parse("other.txt"), None);
    }
}
