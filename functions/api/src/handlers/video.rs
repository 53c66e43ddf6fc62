//! The class's video: the instructor's ingest, key rotation, and playback.

use lambda_http::{Body, Request, Response};
use livestream::AppState;
use livestream::http::{ok, path_param, respond};
use livestream::service::video as rules;

/// `GET /api/livestream/{id}/ingest`
pub async fn ingest(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let id = path_param(&req, "id")?;
            ok(&rules::ingest(&state.store, state.video.as_ref(), &who, &id).await?)
        }
        .await,
    )
}

/// `POST /api/livestream/{id}/stream-key`
pub async fn rotate_key(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let id = path_param(&req, "id")?;
            ok(&rules::rotate_key(&state.store, state.video.as_ref(), &who, &id).await?)
        }
        .await,
    )
}

/// `GET /api/livestream/{id}/playback`
pub async fn playback(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let id = path_param(&req, "id")?;
            ok(&rules::playback(&state.store, state.video.as_ref(), &who, &id).await?)
        }
        .await,
    )
}
