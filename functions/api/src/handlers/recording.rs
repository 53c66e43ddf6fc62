//! The class's recording: what to play, its playlist (authenticated by the token in
//! its URL, as HLS players fetch it without headers), and its deletion.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, ok, path_param, query_param, request_origin, text};
use livestream::service::recording as rules;

/// `GET /api/livestream/{id}/recording`
pub async fn get(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    let origin = request_origin(&req)?;
    ok(&rules::get(&state.store, state.recordings.as_ref(), &who, &id, &origin).await?)
}

/// `GET /api/livestream/{id}/recording/playlist.m3u8?token=`
pub async fn playlist(state: &AppState, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    let token = query_param(&req, "token");
    let playlist = rules::playlist(
        &state.store,
        state.recordings.as_ref(),
        &id,
        token.as_deref(),
    )
    .await?;
    text("application/vnd.apple.mpegurl", playlist)
}

/// `DELETE /api/livestream/{id}/recording`
pub async fn delete(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    ok(&rules::delete(&state.store, state.recordings.as_ref(), &who, &id).await?)
}
