//! Chat handlers. `{seq}` is the message's `seq`.

use lambda_http::Request;
use livestream::auth::Identity;
use livestream::http::{Reply, created, json_body, ok, path_param, query_param};
use livestream::service::chat as rules;
use livestream::{ApiError, AppState};

use super::page_request;

/// `POST /api/livestream/{id}/chat`
pub async fn send(state: &AppState, who: Identity, req: Request) -> Reply {
    let message = rules::send(
        &state.store,
        &who,
        &path_param(&req, "id")?,
        json_body(&req)?,
    )
    .await?;
    created(&message)
}

/// `GET /api/livestream/{id}/chat?since=<seq>`
pub async fn list(state: &AppState, who: Identity, req: Request) -> Reply {
    let since = match query_param(&req, "since").filter(|s| !s.is_empty()) {
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("since", "must be a sequence number (0 or more)"))?,
        None => 0,
    };
    ok(&rules::list(
        &state.store,
        &who,
        &path_param(&req, "id")?,
        since,
        page_request(&req)?,
    )
    .await?)
}

/// `POST /api/livestream/{id}/chat/{seq}/hide`
pub async fn hide(state: &AppState, who: Identity, req: Request) -> Reply {
    let (id, seq) = (path_param(&req, "id")?, path_param(&req, "seq")?);
    ok(&rules::hide(&state.store, &who, &id, &seq).await?)
}

/// `POST /api/livestream/{id}/chat/{seq}/pin`
pub async fn pin(state: &AppState, who: Identity, req: Request) -> Reply {
    let (id, seq) = (path_param(&req, "id")?, path_param(&req, "seq")?);
    let stream = rules::pin(&state.store, &who, &id, &seq).await?;
    let owner = stream.instructor_id == who.user_id;
    ok(&stream.view(owner))
}

/// `DELETE /api/livestream/{id}/chat/pin`
pub async fn unpin(state: &AppState, who: Identity, req: Request) -> Reply {
    let stream = rules::unpin(&state.store, &who, &path_param(&req, "id")?).await?;
    let owner = stream.instructor_id == who.user_id;
    ok(&stream.view(owner))
}
