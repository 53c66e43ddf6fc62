//! Joining, leaving, participants, interaction settings, analytics.

use lambda_http::{Body, Request, Response};
use livestream::AppState;
use livestream::http::{json_body, ok, path_param, respond};
use livestream::service::{participation as rules, stats};

use super::page_request;

/// `POST /api/livestream/{id}/join`
pub async fn join(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::join(&state.store, &who, &path_param(&req, "id")?).await?)
        }
        .await,
    )
}

/// `POST /api/livestream/{id}/leave`
pub async fn leave(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::leave(&state.store, &who, &path_param(&req, "id")?).await?)
        }
        .await,
    )
}

/// `GET /api/livestream/{id}/participants`
pub async fn list(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let id = path_param(&req, "id")?;
            ok(&rules::list(&state.store, &who, &id, page_request(&req)?).await?)
        }
        .await,
    )
}

/// `PUT /api/livestream/{id}/participants/{user_id}`
pub async fn update(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let (id, user) = (path_param(&req, "id")?, path_param(&req, "user_id")?);
            ok(
                &rules::update_permissions(&state.store, &who, &id, &user, json_body(&req)?)
                    .await?,
            )
        }
        .await,
    )
}

/// `PUT /api/livestream/{id}/settings`
pub async fn settings(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let id = path_param(&req, "id")?;
            let stream = rules::update_settings(&state.store, &who, &id, json_body(&req)?).await?;
            ok(&stream.view(true))
        }
        .await,
    )
}

/// `GET /api/livestream/{id}/stats`
pub async fn stats(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&stats::get(&state.store, &who, &path_param(&req, "id")?).await?)
        }
        .await,
    )
}
