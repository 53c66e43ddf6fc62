//! Real change-stream records from the embedded DynamoDB, fed to the broadcaster,
//! with `@connections` served by a recording loopback server.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use livestream::auth::{Authenticator, Role};
use livestream::change_stream::ChangeStreamReader;
use livestream::model::Stream;
use livestream::service::connections;
use livestream::store::Store;
use livestream::testing::{RecordingManagementApi, TEST_SECRET, TestEnv, teacher_stream, token};
use livestream_broadcast::{BatchReport, BroadcastState};

pub struct Harness {
    pub env: TestEnv,
    pub management: RecordingManagementApi,
    pub state: BroadcastState,
    pub reader: ChangeStreamReader,
    auth: Authenticator,
}

impl Harness {
    pub async fn start() -> Self {
        let env = TestEnv::start().await;
        let management = RecordingManagementApi::start().await;
        let state = BroadcastState::new(env.store().clone(), management.connections());
        let reader = env.change_stream().await;
        Self {
            env,
            management,
            state,
            reader,
            auth: Authenticator::hs256(TEST_SECRET, None, None).unwrap(),
        }
    }

    pub fn store(&self) -> &Store {
        self.env.store()
    }

    /// Everything written since the last call, as one Lambda event.
    pub async fn records(&mut self) -> Event {
        self.reader.drain().await.unwrap()
    }

    /// Feeds everything written since the last call to the broadcaster.
    pub async fn broadcast(&mut self) -> (DynamoDbEventResponse, BatchReport) {
        let event = self.records().await;
        livestream_broadcast::handle_batch(&self.state, event).await
    }

    pub async fn stream(&self, live: bool) -> Stream {
        teacher_stream(self.store(), live, true).await
    }

    /// Opens a connection as `$connect` would.
    pub async fn connect(&self, connection_id: &str, user: &str, role: Role, stream: &Stream) {
        connections::connect(
            self.store(),
            &self.auth,
            connection_id,
            Some(&token(user, role)),
            Some(&stream.id),
        )
        .await
        .unwrap();
    }

    pub async fn viewer_count(&self, stream: &Stream) -> i64 {
        self.store()
            .stream(&stream.id)
            .await
            .unwrap()
            .unwrap()
            .viewer_count
    }
}

/// The `type` of each event, in order.
pub fn types(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// The `question.*` events a connection received.
pub fn question_events(h: &Harness, connection_id: &str) -> Vec<serde_json::Value> {
    h.management
        .events(connection_id)
        .into_iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("question."))
        .collect()
}
