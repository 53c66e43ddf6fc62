//! API Gateway event shapes that this project builds itself: the HTTP API (payload
//! 2.0) request event. The local stack sends exactly these to functions, and tests
//! drive handlers with them, so both see what API Gateway would send.

use serde_json::{Value, json};

/// What an HTTP API request carries.
#[derive(Debug, Clone, Default)]
pub struct HttpRequestSpec<'a> {
    pub method: &'a str,
    /// The route key's path, e.g. `/api/livestream/{id}`.
    pub route_path: &'a str,
    /// The request path, e.g. `/api/livestream/01H...`.
    pub path: &'a str,
    pub path_parameters: Vec<(String, String)>,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Option<&'a str>,
    pub source_ip: &'a str,
}

fn decode_component(raw: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| (h * 16 + l, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string the way API Gateway fills `queryStringParameters`
/// (repeated keys joined with commas).
pub fn query_parameters(query: &str) -> serde_json::Map<String, Value> {
    let mut params: serde_json::Map<String, Value> = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_component(k), decode_component(v));
        match params.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    }
    params
}

/// The payload 2.0 event API Gateway's HTTP API sends for a request.
pub fn http_event(spec: &HttpRequestSpec<'_>) -> Value {
    let now = chrono::Utc::now();
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &spec.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| Value::String(c.trim().to_string())),
            );
            continue;
        }
        match headers.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                headers.insert(name, Value::String(value.clone()));
            }
        }
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{} {}", spec.method, spec.route_path),
        "rawPath": spec.path,
        "rawQueryString": spec.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": spec.method,
                "path": spec.path,
                "protocol": "HTTP/1.1",
                "sourceIp": if spec.source_ip.is_empty() { "127.0.0.1" } else { spec.source_ip },
                "userAgent": spec.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("user-agent")).map(|(_, v)| v.as_str()).unwrap_or("")
            },
            "requestId": ulid::Ulid::generate().to_string(),
            "routeKey": format!("{} {}", spec.method, spec.route_path),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "isBase64Encoded": false
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !spec.query.is_empty() {
        event["queryStringParameters"] = Value::Object(query_parameters(spec.query));
    }
    if !spec.path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(
            spec.path_parameters
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(decode_component(v))))
                .collect(),
        );
    }
    if let Some(body) = spec.body {
        event["body"] = Value::String(body.to_string());
    }
    event
}

/// The `lambda_http` request for an event, as the runtime would build it.
pub fn http_request(spec: &HttpRequestSpec<'_>) -> lambda_http::Request {
    lambda_http::request::from_str(&http_event(spec).to_string())
        .expect("a payload 2.0 event built here always parses")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    #[test]
    fn query_strings_are_decoded_like_api_gateway() {
        let q = query_parameters("a=1&b=x%20y&a=2&c");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "x y");
        assert_eq!(q["c"], "");
    }

    #[test]
    fn events_become_requests_with_path_and_query_parameters() {
        let req = http_request(&HttpRequestSpec {
            method: "GET",
            route_path: "/api/livestream/{id}",
            path: "/api/livestream/01ABC",
            path_parameters: vec![("id".into(), "01ABC".into())],
            query: "limit=5",
            headers: vec![("Authorization".into(), "Bearer t".into())],
            ..Default::default()
        });
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path_parameters().first("id"), Some("01ABC"));
        assert_eq!(req.query_string_parameters().first("limit"), Some("5"));
        assert_eq!(req.headers()["authorization"], "Bearer t");
    }
}

/// What a WebSocket API event carries.
#[derive(Debug, Clone, Default)]
pub struct WebSocketEventSpec<'a> {
    /// `$connect`, `$disconnect` or `$default`.
    pub route_key: &'a str,
    pub connection_id: &'a str,
    /// Epoch milliseconds the connection was opened.
    pub connected_at: i64,
    /// The raw query string of the `$connect` request, without `?`.
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    /// The message of a `$default` event.
    pub body: Option<&'a str>,
    pub source_ip: &'a str,
    pub domain_name: &'a str,
    pub stage: &'a str,
}

/// The event API Gateway's WebSocket API sends to a route's Lambda integration.
pub fn websocket_event(spec: &WebSocketEventSpec<'_>) -> Value {
    let now = chrono::Utc::now();
    let event_type = match spec.route_key {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let mut context = json!({
        "routeKey": spec.route_key,
        "eventType": event_type,
        "extendedRequestId": ulid::Ulid::generate().to_string(),
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": if spec.stage.is_empty() { "local" } else { spec.stage },
        "connectedAt": spec.connected_at,
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": { "sourceIp": if spec.source_ip.is_empty() { "127.0.0.1" } else { spec.source_ip } },
        "requestId": ulid::Ulid::generate().to_string(),
        "domainName": if spec.domain_name.is_empty() { "localhost" } else { spec.domain_name },
        "connectionId": spec.connection_id,
        "apiId": "local"
    });
    if event_type == "MESSAGE" {
        context["messageId"] = Value::String(ulid::Ulid::generate().to_string());
    }
    let mut event = json!({ "requestContext": context, "isBase64Encoded": false });
    if !spec.headers.is_empty() {
        let headers: serde_json::Map<String, Value> = spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        event["headers"] = Value::Object(headers.clone());
        event["multiValueHeaders"] = Value::Object(
            headers
                .into_iter()
                .map(|(k, v)| (k, Value::Array(vec![v])))
                .collect(),
        );
    }
    if !spec.query.is_empty() {
        let params = query_parameters(spec.query);
        event["multiValueQueryStringParameters"] = Value::Object(
            params
                .iter()
                .map(|(k, v)| (k.clone(), Value::Array(vec![v.clone()])))
                .collect(),
        );
        event["queryStringParameters"] = Value::Object(params);
    }
    if let Some(body) = spec.body {
        event["body"] = Value::String(body.to_string());
    }
    event
}
