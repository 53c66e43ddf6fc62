//! The HTTP routes of the API and the function serving each: one table used by the
//! API functions, the local stack's router and the check of `infra/template.yaml`.

/// One HTTP API route and the Lambda function (binary) that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway route path, `{name}` for a path parameter.
    pub path: &'static str,
    /// The function's binary name (kebab-case).
    pub function: &'static str,
    /// How the caller proves who they are.
    pub auth: RouteAuth,
}

/// How a route's caller is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAuth {
    /// `Authorization: Bearer <JWT>` (API Gateway's JWT authorizer may check it first).
    Bearer,
    /// A token in the query string that the handler checks itself: HLS players fetch
    /// playlists without headers, so API Gateway must let these through.
    QueryToken,
}

const fn route(method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route {
        method,
        path,
        function,
        auth: RouteAuth::Bearer,
    }
}

/// A route whose handler authenticates a `?token=` itself.
const fn query_token_route(
    method: &'static str,
    path: &'static str,
    function: &'static str,
) -> Route {
    Route {
        method,
        path,
        function,
        auth: RouteAuth::QueryToken,
    }
}

/// Every route of the HTTP API.
pub const ROUTES: &[Route] = &[
    route("POST", "/api/livestream", "create-stream"),
    route("POST", "/api/livestream/", "create-stream"),
    route("GET", "/api/livestream/active", "list-live-streams"),
    route("GET", "/api/livestream/mine", "list-my-streams"),
    route("GET", "/api/livestream/{id}", "get-stream"),
    route("PUT", "/api/livestream/{id}", "update-stream"),
    route("POST", "/api/livestream/{id}/start", "start-stream"),
    route("POST", "/api/livestream/{id}/stop", "stop-stream"),
    route("POST", "/api/livestream/{id}/cancel", "cancel-stream"),
    route(
        "PUT",
        "/api/livestream/{id}/settings",
        "update-stream-settings",
    ),
    route("POST", "/api/livestream/{id}/join", "join-stream"),
    route("POST", "/api/livestream/{id}/leave", "leave-stream"),
    route(
        "GET",
        "/api/livestream/{id}/participants",
        "list-participants",
    ),
    route(
        "PUT",
        "/api/livestream/{id}/participants/{user_id}",
        "update-participant",
    ),
    route("POST", "/api/livestream/{id}/chat", "send-chat-message"),
    route("GET", "/api/livestream/{id}/chat", "list-chat-messages"),
    route(
        "POST",
        "/api/livestream/{id}/chat/{seq}/hide",
        "hide-chat-message",
    ),
    route(
        "POST",
        "/api/livestream/{id}/chat/{seq}/pin",
        "pin-chat-message",
    ),
    route(
        "DELETE",
        "/api/livestream/{id}/chat/pin",
        "unpin-chat-message",
    ),
    route("GET", "/api/livestream/{id}/stats", "get-stream-stats"),
    route("GET", "/api/livestream/{id}/replay", "get-replay"),
    route("GET", "/api/livestream/{id}/attendance", "get-attendance"),
    route("GET", "/api/livestream/{id}/ingest", "get-ingest"),
    route(
        "POST",
        "/api/livestream/{id}/stream-key",
        "rotate-stream-key",
    ),
    route("GET", "/api/livestream/{id}/playback", "get-playback"),
    route("GET", "/api/livestream/{id}/recording", "get-recording"),
    query_token_route(
        "GET",
        "/api/livestream/{id}/recording/playlist.m3u8",
        "get-recording-playlist",
    ),
    route(
        "DELETE",
        "/api/livestream/{id}/recording",
        "delete-recording",
    ),
    route("POST", "/api/courses", "create-course"),
    route("GET", "/api/courses/mine", "list-my-courses"),
    route("POST", "/api/courses/{id}/enrollments", "enroll-student"),
    route("POST", "/api/livestream/{id}/questions", "ask-question"),
    route("GET", "/api/livestream/{id}/questions", "list-questions"),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/upvote",
        "upvote-question",
    ),
    route(
        "DELETE",
        "/api/livestream/{id}/questions/{question_id}/upvote",
        "remove-upvote",
    ),
    route(
        "PUT",
        "/api/livestream/{id}/questions/{question_id}/answer",
        "answer-question",
    ),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/hide",
        "hide-question",
    ),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/approve",
        "approve-question",
    ),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/dismiss",
        "dismiss-question",
    ),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/reopen",
        "reopen-question",
    ),
    route(
        "POST",
        "/api/livestream/{id}/questions/{question_id}/highlight",
        "highlight-question",
    ),
    route(
        "DELETE",
        "/api/livestream/{id}/questions/highlight",
        "clear-highlight",
    ),
];

/// Path parameters of a matched route, in path order.
pub type PathParams = Vec<(String, String)>;

/// The route matching `method` and `path`, with its path parameters. Like API Gateway,
/// a literal segment wins over a parameter (`/active` before `/{id}`).
pub fn match_route(method: &str, path: &str) -> Option<(Route, PathParams)> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(Route, PathParams, usize)> = None;
    for route in ROUTES
        .iter()
        .filter(|r| r.method.eq_ignore_ascii_case(method))
    {
        let pattern: Vec<&str> = route.path.split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut literals = 0;
        let matched = pattern.iter().zip(&segments).all(|(p, s)| {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                params.push((name.to_string(), (*s).to_string()));
                !s.is_empty()
            } else {
                literals += 1;
                p == s
            }
        });
        if matched && best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
            best = Some((*route, params, literals));
        }
    }
    best.map(|(route, params, _)| (route, params))
}

/// Whether any route has this path (for answering 405 rather than 404).
pub fn path_exists(path: &str) -> bool {
    ["GET", "POST", "PUT", "DELETE", "PATCH"]
        .iter()
        .any(|m| match_route(m, path).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let (route, params) = match_route("GET", "/api/livestream/active").unwrap();
        assert_eq!(route.function, "list-live-streams");
        assert!(params.is_empty());
        let (route, params) = match_route("GET", "/api/livestream/01ABC").unwrap();
        assert_eq!(route.function, "get-stream");
        assert_eq!(params, [("id".to_string(), "01ABC".to_string())]);
    }

    #[test]
    fn unknown_routes_do_not_match() {
        assert!(match_route("DELETE", "/api/livestream/x").is_none());
        assert!(match_route("GET", "/api/livestream/x/y/z").is_none());
        assert!(path_exists("/api/livestream/x"));
    }

    #[test]
    fn every_function_name_is_kebab_case() {
        for r in ROUTES {
            assert!(
                r.function
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                r.function
            );
        }
    }
}
