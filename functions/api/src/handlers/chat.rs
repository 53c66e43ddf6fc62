//! Chat handlers. `{seq}` is the message's `seq`.

use lambda_http::{Body, Request, Response};
use livestream::http::{created, json_body, ok, path_param, query_param, respond};
use livestream::service::chat as rules;
use livestream::{ApiError, AppState};

use super::page_request;

/// `POST /api/livestream/{id}/chat`
pub async fn send(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let message = rules::send(
                &state.store,
                &who,
                &path_param(&req, "id")?,
                json_body(&req)?,
            )
            .await?;
            created(&message)
        }
        .await,
    )
}

/// `GET /api/livestream/{id}/chat?since=<seq>`
pub async fn list(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let since = match query_param(&req, "since").filter(|s| !s.is_empty()) {
                Some(raw) => raw.parse::<i64>().map_err(|_| {
                    ApiError::invalid("since", "must be a sequence number (0 or more)")
                })?,
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
        .await,
    )
}

/// `POST /api/livestream/{id}/chat/{seq}/hide`
pub async fn hide(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let (id, seq) = (path_param(&req, "id")?, path_param(&req, "seq")?);
            ok(&rules::hide(&state.store, &who, &id, &seq).await?)
        }
        .await,
    )
}

/// `POST /api/livestream/{id}/chat/{seq}/pin`
pub async fn pin(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let (id, seq) = (path_param(&req, "id")?, path_param(&req, "seq")?);
            let stream = rules::pin(&state.store, &who, &id, &seq).await?;
            let owner = stream.instructor_id == who.user_id;
            ok(&stream.view(owner))
        }
        .await,
    )
}

/// `DELETE /api/livestream/{id}/chat/pin`
pub async fn unpin(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let stream = rules::unpin(&state.store, &who, &path_param(&req, "id")?).await?;
            let owner = stream.instructor_id == who.user_id;
            ok(&stream.view(owner))
        }
        .await,
    )
}
