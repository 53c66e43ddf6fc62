//! The class's video: the instructor's ingest, key rotation, and playback.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, ok, path_param};
use livestream::service::video as rules;

/// `GET /api/livestream/{id}/ingest`
pub async fn ingest(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    ok(&rules::ingest(&state.store, state.video.as_ref(), &who, &id).await?)
}

/// `POST /api/livestream/{id}/stream-key`
pub async fn rotate_key(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    ok(&rules::rotate_key(&state.store, state.video.as_ref(), &who, &id).await?)
}

/// `GET /api/livestream/{id}/playback`
pub async fn playback(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    ok(&rules::playback(&state.store, state.video.as_ref(), &who, &id).await?)
}
