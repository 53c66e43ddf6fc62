//! The web console (teacher console and student view) served at `/`, and the two
//! endpoints only the local stack has: `POST /local/token` (a dev sign-in) and
//! `GET /local/config` (where the WebSocket API listens). Neither exists in the AWS
//! deployment, whose routes come from the shared routes table.
//!
//! The files of `web/` are embedded in release builds; debug builds read them from
//! the checkout, so a page edit shows on reload.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use livestream::ApiError;
use livestream::auth::Role;
use livestream::error::{FieldError, Validator};
use serde::Deserialize;

#[derive(rust_embed::Embed)]
#[folder = "../web"]
struct Assets;

/// What the local-only endpoints need.
pub struct WebConfig {
    /// The WebSocket API's URL, handed to the page.
    pub ws_url: String,
    pub jwt_secret: String,
}

const USER_ID_MAX: usize = 64;
const NAME_MAX: usize = 100;
/// Hours a console sign-in lasts.
const TOKEN_HOURS: i64 = 12;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    user_id: String,
    role: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn error(err: ApiError) -> Response {
    (err.status(), Json(err.body())).into_response()
}

fn parse_user_id(raw: &str) -> Result<String, FieldError> {
    let id = raw.trim();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if id.is_empty() || id.len() > USER_ID_MAX || !id.chars().all(ok_char) {
        return Err(FieldError::new(
            "user_id",
            "must be 1-64 letters, digits, '-', '_', '.' or '@'",
        ));
    }
    Ok(id.to_string())
}

async fn token(State(config): State<Arc<WebConfig>>, body: Bytes) -> Response {
    let input: TokenInput = match livestream::http::parse_json(&body) {
        Ok(input) => input,
        Err(err) => return error(err),
    };
    let mut v = Validator::new();
    let user_id = v.check(parse_user_id(&input.user_id));
    let role = v.check(
        Role::parse(&input.role)
            .ok_or_else(|| FieldError::new("role", "must be teacher, student or admin")),
    );
    let name = input.display_name.as_deref().map(str::trim).unwrap_or("");
    if name.chars().count() > NAME_MAX {
        v.push("display_name", "must be at most 100 characters");
    }
    if let Err(err) = v.finish() {
        return error(err);
    }
    let (Some(user_id), Some(role)) = (user_id, role) else {
        return error(ApiError::Internal("validator passed without values".into()));
    };
    let name = if name.is_empty() { &user_id } else { name };
    let token = crate::dev_token(&config.jwt_secret, &user_id, role, name, TOKEN_HOURS);
    Json(serde_json::json!({ "token": token })).into_response()
}

async fn page_config(State(config): State<Arc<WebConfig>>) -> Response {
    Json(serde_json::json!({ "ws_url": config.ws_url })).into_response()
}

async fn asset(uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    match Assets::get(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, file.metadata.mimetype().to_string()),
                // The console changes with the checkout; never serve a stale module.
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
            file.data,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The console's routes: one exact route per embedded file (so they can never shadow
/// an API path, which keeps the HTTP API's own 404s) and the local-only endpoints.
pub fn router(config: WebConfig) -> axum::Router {
    let mut router = axum::Router::new()
        .route("/local/token", post(token))
        .route("/local/config", get(page_config))
        .route("/", get(asset));
    for file in Assets::iter() {
        router = router.route(&format!("/{file}"), get(asset));
    }
    router.with_state(Arc::new(config))
}
