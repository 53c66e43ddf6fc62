//! The replay of an ended (or running) class: its chat and questions by offset into
//! the recording.

use lambda_http::Request;
use livestream::AppState;
use livestream::auth::Identity;
use livestream::http::{Reply, ok, path_param, query_param};
use livestream::service::replay::{self as rules, ReplayQuery};

/// `GET /api/livestream/{id}/replay?from_ms=&to_ms=&limit=&cursor=`
pub async fn read(state: &AppState, who: Identity, req: Request) -> Reply {
    let query = ReplayQuery::parse(
        query_param(&req, "from_ms").as_deref(),
        query_param(&req, "to_ms").as_deref(),
        query_param(&req, "limit").as_deref(),
        query_param(&req, "cursor").as_deref(),
    )?;
    ok(&rules::read(&state.store, &who, &path_param(&req, "id")?, query).await?)
}
