//! Drives the WebSocket functions with API Gateway WebSocket events against an
//! embedded DynamoDB, with `@connections` served by a recording loopback server.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use livestream::AppState;
use livestream::apigw::{WebSocketEventSpec, websocket_event};
use livestream::auth::Authenticator;
use livestream::model::Stream;
use livestream::testing::{RecordingManagementApi, TEST_SECRET, TestEnv, teacher_stream};
use livestream_ws::WsState;

pub struct WsApp {
    pub env: TestEnv,
    pub management: RecordingManagementApi,
    pub state: WsState,
}

impl WsApp {
    pub async fn spawn() -> Self {
        let env = TestEnv::start().await;
        let management = RecordingManagementApi::start().await;
        let state = WsState {
            app: AppState::new(
                env.store().clone(),
                Authenticator::hs256(TEST_SECRET, None, None).unwrap(),
            ),
            connections: management.connections(),
        };
        Self {
            env,
            management,
            state,
        }
    }

    pub fn store(&self) -> &livestream::store::Store {
        self.env.store()
    }

    /// Runs `$connect` for a new connection; returns the status.
    pub async fn connect(&self, connection_id: &str, query: &str) -> i64 {
        let event = event(WebSocketEventSpec {
            route_key: "$connect",
            connection_id,
            connected_at: chrono::Utc::now().timestamp_millis(),
            query,
            ..Default::default()
        });
        livestream_ws::invoke("ws-connect", &self.state, event)
            .await
            .unwrap()
            .status_code
    }

    pub async fn disconnect(&self, connection_id: &str) -> i64 {
        let event = event(WebSocketEventSpec {
            route_key: "$disconnect",
            connection_id,
            ..Default::default()
        });
        livestream_ws::invoke("ws-disconnect", &self.state, event)
            .await
            .unwrap()
            .status_code
    }

    /// Sends a `$default` message; the replies land in `self.management`.
    pub async fn send(&self, connection_id: &str, body: &str) -> i64 {
        let event = event(WebSocketEventSpec {
            route_key: "$default",
            connection_id,
            body: Some(body),
            ..Default::default()
        });
        livestream_ws::invoke("ws-default", &self.state, event)
            .await
            .unwrap()
            .status_code
    }

    /// A stream of `teacher-1` in a new course, optionally started and private.
    pub async fn stream(&self, live: bool, public: bool) -> Stream {
        teacher_stream(self.store(), live, public).await
    }

    pub async fn reload(&self, stream: &Stream) -> Stream {
        self.store().stream(&stream.id).await.unwrap().unwrap()
    }
}

pub fn event(spec: WebSocketEventSpec<'_>) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(websocket_event(&spec)).expect("a WebSocket event built here parses")
}

pub fn query(token: &str, stream_id: &str) -> String {
    format!("token={token}&stream_id={stream_id}")
}
