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
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else if path == "." {
            format!("the body does not have the expected shape: {inner}")
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request("invalid_body", message)
    })
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
pub fn ok<T: Serialize>(value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json(http::StatusCode::OK, value))
}

/// 201 with a JSON body.
pub fn created<T: Serialize>(value: &T) -> Result<Response<Body>, ApiError> {
    Ok(json(http::StatusCode::CREATED, value))
}

/// The response for an error: its status, its JSON body, `Retry-After` for 429.
pub fn error_response(err: &ApiError) -> Response<Body> {
    match err {
        ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
        other => tracing::info!(
            code = other.code(),
            status = other.status().as_u16(),
            "request refused"
        ),
    }
    let mut response = json(err.status(), &err.body());
    if let ApiError::RateLimited {
        retry_after_secs, ..
    } = err
    {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(*retry_after_secs),
        );
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
    fn type_errors_name_the_field() {
        let err =
            parse_json::<Input>(br#"{"title":"x","nested":{"frame_rate":"sixty"}}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_body");
        assert!(err.to_string().contains("nested.frame_rate"), "{err}");
    }

    #[test]
    fn empty_and_broken_bodies_are_bad_requests() {
        assert_eq!(parse_json::<Input>(b"").unwrap_err().code(), "missing_body");
        assert_eq!(
            parse_json::<Input>(b"{not json").unwrap_err().code(),
            "invalid_body"
        );
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
}
