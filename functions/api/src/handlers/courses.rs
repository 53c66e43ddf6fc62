//! Course handlers.

use lambda_http::{Body, Request, Response};
use livestream::AppState;
use livestream::http::{created, json_body, ok, path_param, respond};
use livestream::service::courses as rules;

use super::page_request;

/// `POST /api/courses`
pub async fn create(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            created(&rules::create(&state.store, &who, json_body(&req)?).await?)
        }
        .await,
    )
}

/// `POST /api/courses/{id}/enrollments`: 201 when new, 200 when already enrolled.
pub async fn enroll(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            let course_id = path_param(&req, "id")?;
            let (enrollment, new) =
                rules::enroll(&state.store, &who, &course_id, json_body(&req)?).await?;
            if new {
                created(&enrollment)
            } else {
                ok(&enrollment)
            }
        }
        .await,
    )
}

/// `GET /api/courses/mine`
pub async fn list_mine(state: &AppState, req: Request) -> Response<Body> {
    respond(
        async {
            let who = state.authenticate(&req).await?;
            ok(&rules::list_mine(&state.store, &who, page_request(&req)?).await?)
        }
        .await,
    )
}
