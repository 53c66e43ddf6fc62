//! Stream management handlers.

use lambda_http::{Body, Request, Response};
use livestream::AppState;
use livestream::http::{created, json_body, ok, path_param, respond};
use livestream::service::streams as rules;

use super::page_request;

/// `POST /api/livestream/`
pub async fn create(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let stream =
                rules::create(&state.store, state.video.as_ref(), &who, json_body(&req)?).await?;
            created(&stream.view(true))
        }
        .await,
    )
}

/// `GET /api/livestream/active`
pub async fn list_live(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::list_live(&state.store, &who, page_request(&req)?).await?)
        }
        .await,
    )
}

/// `GET /api/livestream/mine`
pub async fn list_mine(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::list_mine(&state.store, &who, page_request(&req)?).await?)
        }
        .await,
    )
}

/// `GET /api/livestream/{id}`
pub async fn get(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::get(&state.store, &who, &path_param(&req, "id")?).await?)
        }
        .await,
    )
}

/// `PUT /api/livestream/{id}`
pub async fn update(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
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
        .await,
    )
}

/// `POST /api/livestream/{id}/start`
pub async fn start(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let stream = rules::start(&state.store, &who, &path_param(&req, "id")?).await?;
            ok(&stream.view(true))
        }
        .await,
    )
}

/// `POST /api/livestream/{id}/stop`
pub async fn stop(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let stream = rules::stop(
                &state.store,
                state.video.as_ref(),
                &who,
                &path_param(&req, "id")?,
            )
            .await?;
            ok(&stream.view(true))
        }
        .await,
    )
}

/// `POST /api/livestream/{id}/cancel`
pub async fn cancel(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let stream = rules::cancel(
                &state.store,
                state.video.as_ref(),
                &who,
                &path_param(&req, "id")?,
            )
            .await?;
            ok(&stream.view(true))
        }
        .await,
    )
}
