//! Joining, leaving, participants, interaction settings, analytics.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, json_body, ok, path_param};
use livestream::service::{participation as rules, stats};

use super::page_request;

/// `POST /api/livestream/{id}/join`
pub async fn join(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::join(&state.store, &who, &path_param(&req, "id")?).await?)
}

/// `POST /api/livestream/{id}/leave`
pub async fn leave(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::leave(&state.store, &who, &path_param(&req, "id")?).await?)
}

/// `GET /api/livestream/{id}/participants`
pub async fn list(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    ok(&rules::list(&state.store, &who, &id, page_request(&req)?).await?)
}

/// `PUT /api/livestream/{id}/participants/{user_id}`
pub async fn update(state: &AppState, who: Identity, req: Request) -> Reply {
    let (id, user) = (path_param(&req, "id")?, path_param(&req, "user_id")?);
    ok(&rules::update_permissions(&state.store, &who, &id, &user, json_body(&req)?).await?)
}

/// `PUT /api/livestream/{id}/settings`
pub async fn settings(state: &AppState, who: Identity, req: Request) -> Reply {
    let id = path_param(&req, "id")?;
    let stream = rules::update_settings(&state.store, &who, &id, json_body(&req)?).await?;
    ok(&stream.view(true))
}

/// `GET /api/livestream/{id}/stats`
pub async fn stats(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&stats::get(&state.store, &who, &path_param(&req, "id")?).await?)
}
