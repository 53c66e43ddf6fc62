//! The HTTP API, routed like the deployed API Gateway HTTP API: the shared routes
//! table picks the function, which gets a payload 2.0 event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use livestream::apigw::{HttpRequestSpec, http_event};
use livestream::routes::{match_route, path_exists};

use crate::invoker::Invoker;

/// What the HTTP API shares between requests.
pub struct HttpApi {
    pub invoker: Arc<Invoker>,
    /// Origins allowed by CORS; empty means any `localhost` / `127.0.0.1` origin.
    pub cors_origins: Vec<String>,
}

fn allowed_origin(api: &HttpApi, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get("origin")?.to_str().ok()?;
    let ok = if api.cors_origins.is_empty() {
        let host = origin
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("");
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    } else {
        api.cors_origins.iter().any(|o| o == origin || o == "*")
    };
    ok.then(|| HeaderValue::from_str(origin).ok()).flatten()
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let h = response.headers_mut();
        h.insert("access-control-allow-origin", origin);
        h.insert("vary", HeaderValue::from_static("Origin"));
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("retry-after"),
        );
    }
    response
}

/// An answer of the emulated gateway itself, in the API's error shape (the deployed
/// HTTP API answers these with its own `{"message"}` body).
fn gateway_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response()
}

/// Every request: CORS preflight, routing, invocation, one log line.
pub async fn handle(
    State(api): State<Arc<HttpApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let origin = allowed_origin(&api, &headers);
    let path = uri.path().to_string();
    if method == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("600"));
        return with_cors(response, origin);
    }
    if method == Method::GET && path == "/openapi.json" {
        let response = axum::Json(livestream::openapi::document()).into_response();
        return with_cors(response, origin);
    }
    let Some((route, params)) = match_route(method.as_str(), &path) else {
        let response = if path_exists(&path) {
            let allowed: Vec<&str> = ["GET", "POST", "PUT", "DELETE"]
                .into_iter()
                .filter(|m| match_route(m, &path).is_some())
                .collect();
            let mut response = gateway_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{method} is not allowed here; use {}", allowed.join(", ")),
            );
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert("allow", allow);
            }
            response
        } else {
            gateway_error(
                StatusCode::NOT_FOUND,
                "route_not_found",
                &format!("no route {method} {path}"),
            )
        };
        tracing::info!(method = %method, path = %path, status = response.status().as_u16(), "no route");
        return with_cors(response, origin);
    };
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body_text = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    let source_ip = peer.ip().to_string();
    let event = http_event(&HttpRequestSpec {
        method: method.as_str(),
        route_path: route.path,
        path: &path,
        path_parameters: params,
        query: uri.query().unwrap_or(""),
        headers: header_pairs,
        body: body_text.as_deref(),
        source_ip: &source_ip,
    });
    let reply = api.invoker.http(route.function, event).await;
    tracing::info!(
        route = %format!("{} {}", route.method, route.path),
        status = reply.status,
        latency_ms = started.elapsed().as_millis() as u64,
        function = route.function,
        "http"
    );
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let response = response
        .body(axum::body::Body::from(reply.body))
        .unwrap_or_else(|_| {
            gateway_error(
                StatusCode::BAD_GATEWAY,
                "internal_error",
                "the function's response was malformed",
            )
        });
    with_cors(response, origin)
}

pub fn router(api: Arc<HttpApi>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(api)
}
