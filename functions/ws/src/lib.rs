//! The WebSocket API functions: `$connect`, `$disconnect` and `$default`.
//!
//! Clients connect with `?token=<JWT>&stream_id=<id>` (browsers cannot set headers on
//! WebSockets) and send `{ "action": ... }` messages; replies and live events come back
//! as `{ "type", "stream_id", "data" }` through `@connections`.

pub mod actions;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use livestream::realtime::Connections;
use livestream::service::connections;
use livestream::{ApiError, AppState};

/// What the WebSocket functions borrow: the table, the authenticator, `@connections`.
pub struct WsState {
    pub app: AppState,
    pub connections: Connections,
}

impl WsState {
    pub async fn from_env() -> Result<Self, String> {
        Ok(Self {
            app: AppState::from_env().await?,
            connections: Connections::from_env().await?,
        })
    }
}

/// The WebSocket routes and the function serving each.
pub const ROUTES: &[(&str, &str)] = &[
    ("$connect", "ws-connect"),
    ("$disconnect", "ws-disconnect"),
    ("$default", "ws-default"),
];

fn response(status: u16, body: String) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.body = Some(Body::Text(body));
    r
}

fn error_response(err: &ApiError) -> ApiGatewayProxyResponse {
    match err {
        ApiError::Internal(detail) => tracing::error!(error = %detail, "websocket request failed"),
        other => tracing::info!(code = other.code(), "websocket request refused"),
    }
    response(err.status().as_u16(), err.body().to_string())
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Result<&str, ApiError> {
    event
        .request_context
        .connection_id
        .as_deref()
        .ok_or_else(|| {
            ApiError::bad_request("missing_connection_id", "the event has no connection id")
        })
}

/// `$connect`: 200 accepts the connection; any other status refuses it.
pub async fn connect(
    state: &WsState,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let result = async {
        let id = connection_id(&event)?;
        let query = &event.query_string_parameters;
        connections::connect(
            &state.app.store,
            &state.app.auth,
            id,
            query.first("token"),
            query.first("stream_id"),
        )
        .await
    }
    .await;
    match result {
        Ok(connection) => {
            tracing::info!(connection = %connection.connection_id, stream = %connection.stream_id, user = %connection.user_id, "connected");
            response(200, String::new())
        }
        Err(err) => error_response(&err),
    }
}

/// `$disconnect`: the connection is gone; its presence ends.
pub async fn disconnect(
    state: &WsState,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let result = async {
        let id = connection_id(&event)?;
        connections::disconnect(&state.app.store, id).await
    }
    .await;
    match result {
        Ok(_) => response(200, String::new()),
        Err(err) => error_response(&err),
    }
}

/// Calls the function named `function` with a WebSocket event; `None` if unknown.
pub async fn invoke(
    function: &str,
    state: &WsState,
    event: ApiGatewayWebsocketProxyRequest,
) -> Option<ApiGatewayProxyResponse> {
    Some(match function {
        // Boxed: the presence retry loops make these futures deep and large.
        "ws-connect" => Box::pin(connect(state, event)).await,
        "ws-disconnect" => Box::pin(disconnect(state, event)).await,
        "ws-default" => Box::pin(actions::handle(state, event)).await,
        _ => return None,
    })
}

/// Runs one WebSocket function as a Lambda.
pub async fn serve(function: &'static str) -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static WsState = Box::leak(Box::new(WsState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let started = std::time::Instant::now();
            let info = livestream::telemetry::RequestInfo {
                function: function.to_string(),
                route: event
                    .payload
                    .request_context
                    .route_key
                    .clone()
                    .unwrap_or_default(),
                request_id: event.context.request_id.clone(),
            };
            let reply = invoke(function, state, event.payload)
                .await
                .unwrap_or_else(|| response(500, String::new()));
            let status = u16::try_from(reply.status_code).unwrap_or(500);
            livestream::telemetry::record_request(&info, status, started.elapsed(), None);
            livestream::telemetry::flush_metrics();
            Ok::<_, std::convert::Infallible>(reply)
        },
    ))
    .await
}
