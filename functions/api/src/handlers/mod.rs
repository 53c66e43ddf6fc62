//! One handler per HTTP function: given the authenticated caller, parse, call a rule of
//! `livestream`, map the result. The dispatch table ([`crate::HANDLERS`]) authenticates
//! first, and errors become responses in [`livestream::http::respond`].

pub mod attendance;
pub mod chat;
pub mod courses;
pub mod participation;
pub mod questions;
pub mod recording;
pub mod replay;
pub mod streams;
pub mod video;

use lambda_http::Request;
use livestream::ApiError;
use livestream::service::PageRequest;

/// `cursor` and `limit` from the query string.
pub(crate) fn page_request(req: &Request) -> Result<PageRequest, ApiError> {
    use livestream::http::query_param;
    PageRequest::parse(
        query_param(req, "cursor").as_deref(),
        query_param(req, "limit").as_deref(),
    )
}
