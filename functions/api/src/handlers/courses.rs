//! Course handlers.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, created, json_body, ok, path_param};
use livestream::service::courses as rules;

use super::page_request;

/// `POST /api/courses`
pub async fn create(state: &AppState, who: Identity, req: Request) -> Reply {
    created(&rules::create(&state.store, &who, json_body(&req)?).await?)
}

/// `POST /api/courses/{id}/enrollments`: 201 when new, 200 when already enrolled.
pub async fn enroll(state: &AppState, who: Identity, req: Request) -> Reply {
    let course_id = path_param(&req, "id")?;
    let (enrollment, new) = rules::enroll(&state.store, &who, &course_id, json_body(&req)?).await?;
    if new {
        created(&enrollment)
    } else {
        ok(&enrollment)
    }
}

/// `GET /api/courses/mine`
pub async fn list_mine(state: &AppState, who: Identity, req: Request) -> Reply {
    ok(&rules::list_mine(&state.store, &who, page_request(&req)?).await?)
}
