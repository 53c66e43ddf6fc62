//! The HTTP API functions of the livestream backend.
//!
//! Each route of [`livestream::routes::ROUTES`] is served by its function, whose handler
//! [`HANDLERS`] names. On Lambda the multi-call bootstrap (`functions/bootstrap`) runs
//! [`serve`] with the handler its `_HANDLER` names; [`invoke`] reaches the same handlers
//! by function name, for the local stack's in-process mode.

pub mod handlers;

use std::future::Future;
use std::pin::Pin;

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
pub async fn serve(handler: Handler) -> Result<(), lambda_http::Error> {
    livestream::telemetry::init();
    let state: &'static AppState = Box::leak(Box::new(AppState::from_env().await?));
    lambda_http::run(lambda_http::service_fn(|req: Request| {
        let info = request_info(&req);
        let response = livestream::telemetry::observe(info, handler(state, req));
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    }))
    .await
}

/// One HTTP handler as the dispatch table holds it (its future boxed, so that every
/// handler has the same type).
pub type Handler = for<'a> fn(&'a AppState, Request) -> BoxedResponse<'a>;

/// The response future of a [`Handler`].
pub type BoxedResponse<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;

/// A handler in the table: the caller authenticated from the bearer token first, and
/// the handler's error turned into the response.
macro_rules! handler {
    // A route of `RouteAuth::QueryToken`: the handler checks its own token.
    (query_token: $f:path) => {
        |state, req| Box::pin(async move { livestream::http::respond($f(state, req).await) })
    };
    ($f:path) => {
        |state, req| {
            Box::pin(async move {
                livestream::http::respond(
                    async {
                        let who = state.authenticate(&req).await?;
                        $f(state, who, req).await
                    }
                    .await,
                )
            })
        }
    };
}

/// The HTTP functions and their handlers: the one table the Lambda bootstrap and the
/// local stack both dispatch through (a test checks it against the routes).
pub const HANDLERS: &[(&str, Handler)] = {
    use handlers::{
        attendance, chat, courses, participation, questions, recording, replay, streams, video,
    };
    &[
        ("create-stream", handler!(streams::create)),
        ("list-live-streams", handler!(streams::list_live)),
        ("list-my-streams", handler!(streams::list_mine)),
        ("get-stream", handler!(streams::get)),
        ("update-stream", handler!(streams::update)),
        ("start-stream", handler!(streams::start)),
        ("stop-stream", handler!(streams::stop)),
        ("cancel-stream", handler!(streams::cancel)),
        ("create-course", handler!(courses::create)),
        ("list-my-courses", handler!(courses::list_mine)),
        ("enroll-student", handler!(courses::enroll)),
        ("update-stream-settings", handler!(participation::settings)),
        ("join-stream", handler!(participation::join)),
        ("leave-stream", handler!(participation::leave)),
        ("list-participants", handler!(participation::list)),
        ("update-participant", handler!(participation::update)),
        ("get-stream-stats", handler!(participation::stats)),
        ("get-replay", handler!(replay::read)),
        ("get-attendance", handler!(attendance::report)),
        ("get-ingest", handler!(video::ingest)),
        ("rotate-stream-key", handler!(video::rotate_key)),
        ("get-playback", handler!(video::playback)),
        ("get-recording", handler!(recording::get)),
        (
            "get-recording-playlist",
            handler!(query_token: recording::playlist),
        ),
        ("delete-recording", handler!(recording::delete)),
        ("send-chat-message", handler!(chat::send)),
        ("list-chat-messages", handler!(chat::list)),
        ("hide-chat-message", handler!(chat::hide)),
        ("pin-chat-message", handler!(chat::pin)),
        ("unpin-chat-message", handler!(chat::unpin)),
        ("ask-question", handler!(questions::ask)),
        ("list-questions", handler!(questions::list)),
        ("upvote-question", handler!(questions::upvote)),
        ("remove-upvote", handler!(questions::remove_upvote)),
        ("answer-question", handler!(questions::answer)),
        ("hide-question", handler!(questions::hide)),
        ("approve-question", handler!(questions::approve)),
        ("dismiss-question", handler!(questions::dismiss)),
        ("reopen-question", handler!(questions::reopen)),
        ("highlight-question", handler!(questions::highlight)),
        ("clear-highlight", handler!(questions::clear_highlight)),
    ]
};

/// The handler of the function named `function`, if it is an HTTP function.
pub fn handler(function: &str) -> Option<Handler> {
    HANDLERS
        .iter()
        .find(|(name, _)| *name == function)
        .map(|(_, handler)| *handler)
}

/// Calls the handler of the function named `function`; `None` if there is none.
pub async fn invoke(function: &str, state: &AppState, req: Request) -> Option<Response<Body>> {
    Some(handler(function)?(state, req).await)
}
