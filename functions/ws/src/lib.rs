//! The WebSocket API functions: `$connect`, `$disconnect` and `$default`.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use livestream::AppState;
use livestream::realtime::Connections;

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

fn response(status: u16, body: &str) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status);
    r.body = Some(aws_lambda_events::encodings::Body::Text(body.to_string()));
    r
}

/// Calls the function named `function` with a WebSocket event; `None` if unknown.
pub async fn invoke(
    function: &str,
    _state: &WsState,
    _event: ApiGatewayWebsocketProxyRequest,
) -> Option<ApiGatewayProxyResponse> {
    // Placeholder until the WebSocket functions land: accept and ignore.
    match function {
        "ws-connect" | "ws-disconnect" | "ws-default" => Some(response(200, "")),
        _ => None,
    }
}

/// Runs one WebSocket function as a Lambda.
pub async fn serve(function: &'static str) -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static WsState = Box::leak(Box::new(WsState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, std::convert::Infallible>(
                invoke(function, state, event.payload)
                    .await
                    .unwrap_or_else(|| response(500, "")),
            )
        },
    ))
    .await
}
