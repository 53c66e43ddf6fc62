//! Stream management handlers.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, created, json_body, ok, path_param};
use livestream::service::streams as rules;

use super::page_request;

/// `POST /api/livestream/`
pub async fn create(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::create(&state.store, state.video.as_ref(), &who, json_body(&req)?).await?;
    created(&stream.view(true))
}

/// `GET /api/livestream/active`
pub async fn list_live(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::list_live(&state.store, &who, page_request(&req)?).await?)
}

/// `GET /api/livestream/mine`
pub async fn list_mine(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::list_mine(&state.store, &who, page_request(&req)?).await?)
}

/// `GET /api/livestream/{id}`
pub async fn get(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::get(&state.store, &who, &path_param(&req, "id")?).await?)
}

/// `PUT /api/livestream/{id}`
pub async fn update(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    let stream = rules::update(
        &state.store,
        state.video.as_ref(),
        &who,
        &id,
        json_body(&req)?,
    )
    .await?;
    ok(&stream.view(true))
}

/// `POST /api/livestream/{id}/start`
pub async fn start(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::start(&state.store, &who, &path_param(&req, "id")?).await?;
    ok(&stream.view(true))
}

/// `POST /api/livestream/{id}/stop`
pub async fn stop(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::stop(
        &state.store,
        state.video.as_ref(),
        &who,
        &path_param(&req, "id")?,
    )
    .await?;
    ok(&stream.view(true))
}

/// `POST /api/livestream/{id}/cancel`
pub async fn cancel(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::cancel(
        &state.store,
        state.video.as_ref(),
        &who,
        &path_param(&req, "id")?,
    )
    .await?;
    ok(&stream.view(true))
}
