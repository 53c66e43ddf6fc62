//! The HTTP API functions of the livestream backend.
//!
//! Each route of [`livestream::routes::ROUTES`] has a Lambda binary in `src/bin/` whose
//! `main` only wires [`serve`] to one handler of [`handlers`]. [`invoke`] reaches the
//! same handlers by function name, for the local stack's in-process mode.

pub mod handlers;

use std::future::Future;

use lambda_http::{Body, Request, RequestExt, Response};
use livestream::AppState;
use livestream::telemetry::RequestInfo;

/// The function, route and request id of an API Gateway request (the function from
/// the routes table, so every deployment names it alike).
fn request_info(req: &Request) -> RequestInfo {
    use lambda_http::request::RequestContext;
    let (route, request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => (
            context.route_key.clone().unwrap_or_default(),
            context.request_id.clone().unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let function = livestream::routes::ROUTES
        .iter()
        .find(|r| {
            route
                .split_once(' ')
                .is_some_and(|(method, path)| r.method == method && r.path == path)
        })
        .map(|r| r.function.to_string())
        .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .unwrap_or_default();
    RequestInfo {
        function,
        route,
        request_id,
    }
}

/// Runs one handler as a Lambda function: logging, state from the environment once
/// per cold start, then the runtime loop; every request gets its log line and metrics.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static AppState, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    livestream::telemetry::init();
    let state: &'static AppState = Box::leak(Box::new(AppState::from_env().await?));
    lambda_http::run(lambda_http::service_fn(|req: Request| {
        let info = request_info(&req);
        let response = livestream::telemetry::observe(info, handler(state, req));
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

/// Calls the handler of the function named `function`; `None` if there is none.
pub async fn invoke(function: &str, state: &AppState, req: Request) -> Option<Response<Body>> {
    use handlers::{chat, courses, participation, questions, streams};
    Some(match function {
        "create-stream" => streams::create(state, req).await,
        "list-live-streams" => streams::list_live(state, req).await,
        "list-my-streams" => streams::list_mine(state, req).await,
        "get-stream" => streams::get(state, req).await,
        "update-stream" => streams::update(state, req).await,
        "start-stream" => streams::start(state, req).await,
        "stop-stream" => streams::stop(state, req).await,
        "cancel-stream" => streams::cancel(state, req).await,
        "create-course" => courses::create(state, req).await,
        "list-my-courses" => courses::list_mine(state, req).await,
        "enroll-student" => courses::enroll(state, req).await,
        "update-stream-settings" => participation::settings(state, req).await,
        "join-stream" => participation::join(state, req).await,
        "leave-stream" => participation::leave(state, req).await,
        "list-participants" => participation::list(state, req).await,
        "update-participant" => participation::update(state, req).await,
        "get-stream-stats" => participation::stats(state, req).await,
        "send-chat-message" => chat::send(state, req).await,
        "list-chat-messages" => chat::list(state, req).await,
        "hide-chat-message" => chat::hide(state, req).await,
        "pin-chat-message" => chat::pin(state, req).await,
        "unpin-chat-message" => chat::unpin(state, req).await,
        "ask-question" => questions::ask(state, req).await,
        "list-questions" => questions::list(state, req).await,
        "upvote-question" => questions::upvote(state, req).await,
        "remove-upvote" => questions::remove_upvote(state, req).await,
        "answer-question" => questions::answer(state, req).await,
        "hide-question" => questions::hide(state, req).await,
        "approve-question" => questions::approve(state, req).await,
        "dismiss-question" => questions::dismiss(state, req).await,
        "reopen-question" => questions::reopen(state, req).await,
        "highlight-question" => questions::highlight(state, req).await,
        "clear-highlight" => questions::clear_highlight(state, req).await,
        _ => return None,
    })
}
