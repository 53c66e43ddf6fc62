//! HTTP envelopes shared by every API function: reading path and query parameters and
//! JSON bodies from an API Gateway request, and writing JSON and error responses.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A path parameter of the matched route (`{id}` in `/api/livestream/{id}`).
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_path_parameter",
                format!("missing path parameter {name}"),
            )
        })
}

/// A query string parameter, if given.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_string)
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// Parses the JSON body; a wrong type names the offending field.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    parse_json(body_bytes(req))
}

/// Parses a JSON document; shared by HTTP bodies and WebSocket frames.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "missing_body",
            "a JSON body is required",
        ));
    }
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::bad_request(
            "body_too_large",
            format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "invalid_body",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        match field_of(&path, &inner.to_string()) {
            Some(field) => ApiError::invalid(field, strip_position(&inner.to_string())),
            None => ApiError::bad_request(
                "invalid_body",
                format!("the body does not have the expected shape: {inner}"),
            ),
        }
    })?;
    // One document per body: `{"message":"a"} junk` is not a message.
    de.end().map_err(|_| {
        ApiError::bad_request("invalid_body", "the body has data after its JSON document")
    })?;
    Ok(value)
}

/// The field a data error is about: its path, or the field a "missing field" names.
fn field_of(path: &str, message: &str) -> Option<String> {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => Some(name.to_string()),
        (".", None) => None,
        (parent, Some(name)) => Some(format!("{parent}.{name}")),
        (path, None) => Some(path.to_string()),
    }
}

/// serde's messages end with " at line 1 column 42", which means nothing in a form.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: http::StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .expect("static headers are valid")
}

/// 200 with a JSON body.
/// What a handler answers: a response, or the error [`respond`] turns into one.
pub type Reply = Result<Response<Body>, ApiError>;

pub fn ok<T: Serialize>(value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json(http::StatusCode::OK, value))
}

/// 200 with a body that is not JSON (a CSV report, an HLS playlist).
pub fn text(content_type: &str, body: String) -> Reply {
    Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::Text(body))
        .map_err(|e| ApiError::Internal(format!("building a {content_type} response: {e}")))
}

/// Whether the caller asked for `media_type` (`Accept`), e.g. `text/csv`.
pub fn accepts(req: &Request, media_type: &str) -> bool {
    req.headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
        })
}

/// Where this API answers, as the caller reached it (`https://host`): the scheme API
/// Gateway forwards (`X-Forwarded-Proto`, `http` without it, as locally) and `Host`.
pub fn request_origin(req: &Request) -> Result<String, ApiError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = header("host")
        .ok_or_else(|| ApiError::bad_request("missing_host", "the request has no Host header"))?;
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(ApiError::bad_request(
            "invalid_host",
            "the Host header is not a host",
        ));
    }
    let scheme = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}"))
}

/// 201 with a JSON body.
pub fn created<T: Serialize>(value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json(http::StatusCode::CREATED, value))
}

/// The response for an error: its status, its JSON body, `Retry-After` for 429 and 503.
pub fn error_response(err: &ApiError) -> Response<Body> {
    match err {
        ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
        ApiError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "request refused: the table stayed busy")
        }
        other => tracing::info!(
            code = other.code(),
            status = other.status().as_u16(),
            "request refused"
        ),
    }
    let mut response = json(err.status(), &err.body());
    if let Some(seconds) = err.retry_after_secs() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    response
}

/// Turns a handler's result into the response, errors included.
pub fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(|err| error_response(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Input {
        title: String,
        nested: Nested,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        frame_rate: u16,
    }

    #[test]
    fn type_errors_are_field_errors() {
        let err =
            parse_json::<Input>(br#"{"title":"x","nested":{"frame_rate":"sixty"}}"#).unwrap_err();
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(err.status(), 422);
        let details = &err.body()["error"]["details"];
        assert_eq!(details[0]["field"], "nested.frame_rate");
        assert!(!details[0]["message"].as_str().unwrap().contains("line"));
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_json::<Input>(br#"{"nested":{"frame_rate":30}}"#).unwrap_err();
        assert_eq!(err.body()["error"]["details"][0]["field"], "title");
        let err = parse_json::<Input>(br#"{"title":"x","nested":{}}"#).unwrap_err();
        assert_eq!(
            err.body()["error"]["details"][0]["field"],
            "nested.frame_rate"
        );
    }

    #[test]
    fn empty_and_broken_bodies_are_bad_requests() {
        assert_eq!(parse_json::<Input>(b"").unwrap_err().code(), "missing_body");
        assert_eq!(
            parse_json::<Input>(b"{not json").unwrap_err().code(),
            "invalid_body"
        );
        assert_eq!(
            parse_json::<Input>(b"\"a string\"").unwrap_err().code(),
            "invalid_body"
        );
    }

    #[test]
    fn trailing_data_after_the_document_is_refused() {
        let body = br#"{"title":"x","nested":{"frame_rate":30}} junk"#;
        let err = parse_json::<Input>(body).unwrap_err();
        assert_eq!(err.code(), "invalid_body");
        assert_eq!(err.status(), 400);
        assert!(parse_json::<Input>(br#"{"title":"x","nested":{"frame_rate":30}}  "#).is_ok());
    }

    #[test]
    fn rate_limited_responses_carry_retry_after() {
        let response = error_response(&ApiError::RateLimited {
            message: "slow down".into(),
            retry_after_secs: 3,
        });
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
    }

    #[test]
    fn a_table_that_stayed_busy_is_a_503_to_retry_not_a_500() {
        let err: ApiError = crate::store::StoreError::Busy("ThrottlingException".into()).into();
        let response = error_response(&err);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body = err.body();
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["retry_after_seconds"], 1);
        assert!(!body.to_string().contains("Throttling"), "{body}");
    }
}
