//! Test support: a real DynamoDB (dynoxide, embedded) on a random loopback port.
//!
//! Every [`TestEnv`] has its own in-memory database and table, so tests run in
//! parallel without sharing state. Nothing here fakes the store: requests go through
//! `aws-sdk-dynamodb` over HTTP exactly as in production.

use crate::AppState;
use crate::auth::{Authenticator, Identity, Role, TokenSpec, mint_hs256};
pub use crate::embedded::{EmbeddedDynamo, dynamo_config};
use crate::store::Store;

/// The HS256 secret of test and local tokens.
pub const TEST_SECRET: &[u8] = b"local-development-secret-not-for-production-use";
pub const TEST_TABLE: &str = "livestream";

/// A fresh table with the production definition, and the state handlers borrow.
pub struct TestEnv {
    pub dynamo: EmbeddedDynamo,
    pub state: AppState,
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::on(EmbeddedDynamo::memory().await).await
    }

    /// The table created in a store that is already served (e.g. one in a file).
    pub async fn on(dynamo: EmbeddedDynamo) -> Self {
        let client = dynamo.client();
        crate::table::create_table(&client, TEST_TABLE)
            .await
            .expect("table is created");
        let store = Store::new(client, TEST_TABLE);
        let auth =
            Authenticator::hs256(TEST_SECRET, None, None).expect("test secret is long enough");
        Self {
            dynamo,
            state: AppState::new(store, auth),
        }
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// A store on this table whose client counts the operations it sends.
    pub fn counting_store(&self) -> (Store, Operations) {
        let operations = Operations::default();
        let config = self
            .dynamo
            .client()
            .config()
            .to_builder()
            .interceptor(operations.clone())
            .build();
        (
            Store::new(aws_sdk_dynamodb::Client::from_conf(config), TEST_TABLE),
            operations,
        )
    }

    /// A reader of the table's change stream, from now on.
    pub async fn change_stream(&self) -> crate::change_stream::ChangeStreamReader {
        crate::change_stream::ChangeStreamReader::open(
            self.dynamo.streams_client(),
            TEST_TABLE,
            "us-east-1",
            crate::change_stream::StartAt::Latest,
        )
        .await
        .expect("the table has a stream")
    }
}

/// Serves `app` on a random loopback port until the returned sender is dropped or
/// sent to: its base URL and that sender.
pub async fn serve_on_loopback(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback binds");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (endpoint, stop)
}

/// A signed token for a test user.
pub fn token(user_id: &str, role: Role) -> String {
    mint_hs256(
        TEST_SECRET,
        &TokenSpec {
            user_id,
            role,
            name: user_id,
            valid_for: chrono::Duration::hours(1),
            issuer: None,
            audience: None,
        },
    )
}

/// The identity a [`token`] for the same user and role authenticates as.
pub fn identity(user_id: &str, role: Role) -> Identity {
    Identity {
        user_id: user_id.to_string(),
        role,
        display_name: user_id.to_string(),
    }
}

type PostLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;
/// Marks a DELETE in the post log (no frame is ever this).
const CLOSED: &[u8] = b"\0closed";

type GoneSet = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;
type FailingMap = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// A loopback `@connections` endpoint for tests: records every frame posted to each
/// connection and every connection closed (DELETE), answers 410 Gone for connections
/// marked gone or closed, 500 to the next posts of connections told to fail, and
/// `GetConnection` 200 for the others.
pub struct RecordingManagementApi {
    pub endpoint: String,
    posts: PostLog,
    gone: GoneSet,
    failing: FailingMap,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RecordingManagementApi {
    pub async fn start() -> Self {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;

        type Shared = (PostLog, GoneSet, FailingMap);
        fn gone_reply() -> axum::response::Response {
            (
                StatusCode::GONE,
                [("x-amzn-ErrorType", "GoneException")],
                r#"{"message":"Gone"}"#,
            )
                .into_response()
        }
        async fn post(
            State((posts, gone, failing)): State<Shared>,
            Path(id): Path<String>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            if let Some(left) = failing.lock().unwrap().get_mut(&id).filter(|n| **n > 0) {
                *left -= 1;
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"message":"Internal"}"#,
                )
                    .into_response();
            }
            if gone.lock().unwrap().contains(&id) {
                return gone_reply();
            }
            posts.lock().unwrap().push((id, body.to_vec()));
            StatusCode::OK.into_response()
        }
        async fn get(
            State((_, gone, _)): State<Shared>,
            Path(id): Path<String>,
        ) -> axum::response::Response {
            if gone.lock().unwrap().contains(&id) {
                return gone_reply();
            }
            axum::Json(serde_json::json!({"ConnectedAt": "2026-01-01T00:00:00.000Z"}))
                .into_response()
        }
        async fn delete(
            State((posts, gone, _)): State<Shared>,
            Path(id): Path<String>,
        ) -> axum::response::Response {
            if !gone.lock().unwrap().insert(id.clone()) {
                return gone_reply();
            }
            posts.lock().unwrap().push((id, CLOSED.to_vec()));
            StatusCode::NO_CONTENT.into_response()
        }
        let posts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let gone = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let failing = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let app = axum::Router::new()
            .route(
                "/@connections/{id}",
                axum::routing::post(post).get(get).delete(delete),
            )
            .with_state((posts.clone(), gone.clone(), failing.clone()));
        let (endpoint, stop) = serve_on_loopback(app).await;
        Self {
            endpoint,
            posts,
            gone,
            failing,
            stop: Some(stop),
        }
    }

    /// A `@connections` client pointed at this endpoint.
    pub fn connections(&self) -> crate::realtime::Connections {
        crate::realtime::Connections::local(&self.endpoint)
    }

    /// From now on, posts to this connection answer 410 Gone.
    pub fn mark_gone(&self, connection_id: &str) {
        self.gone.lock().unwrap().insert(connection_id.to_string());
    }

    /// Whether the server closed this connection (`DELETE @connections/{id}`).
    pub fn was_closed(&self, connection_id: &str) -> bool {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .any(|(id, body)| id == connection_id && body == CLOSED)
    }

    /// The next `times` posts to this connection answer 500.
    pub fn fail_next(&self, connection_id: &str, times: usize) {
        self.failing
            .lock()
            .unwrap()
            .insert(connection_id.to_string(), times);
    }

    /// The raw frames posted to a connection, in order (not counting its closing).
    pub fn frames(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, body)| id == connection_id && body != CLOSED)
            .map(|(_, body)| serde_json::from_slice(body).expect("frames are JSON"))
            .collect()
    }

    /// The events posted to a connection, frames of several events flattened, in order.
    pub fn events(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.frames(connection_id)
            .into_iter()
            .flat_map(|frame| match frame {
                serde_json::Value::Array(events) => events,
                event => vec![event],
            })
            .collect()
    }

    /// Number of posts (frames) so far, to every connection.
    pub fn post_count(&self) -> usize {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body != CLOSED)
            .count()
    }

    pub fn clear(&self) {
        self.posts.lock().unwrap().clear();
    }
}

impl Drop for RecordingManagementApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The teacher who owns the streams of [`teacher_stream`].
pub const TEACHER: &str = "teacher-1";

/// A stream of [`TEACHER`] in a new course of theirs, started when `live`.
pub async fn teacher_stream(store: &Store, live: bool, public: bool) -> crate::model::Stream {
    let teacher = identity(TEACHER, Role::Teacher);
    let course = crate::model::Course {
        id: crate::model::new_id(),
        title: "Course".into(),
        description: String::new(),
        teacher_id: TEACHER.into(),
        created_at: crate::model::now(),
    };
    store
        .create_course(&course)
        .await
        .expect("course is stored");
    let input = serde_json::from_value(serde_json::json!({
        "title": "Live lecture",
        "course_id": course.id,
        "is_public": public,
    }))
    .expect("a valid stream input");
    let stream = crate::service::streams::create(store, None, &teacher, input)
        .await
        .expect("stream is created");
    if live {
        crate::service::streams::start(store, &teacher, &stream.id)
            .await
            .expect("stream starts")
    } else {
        stream
    }
}

/// Counts the DynamoDB operations a client sends, by name (`UpdateItem`,
/// `TransactWriteItems`, ...): an SDK interceptor, so it sees exactly what goes out.
#[derive(Debug, Clone, Default)]
pub struct Operations(std::sync::Arc<std::sync::Mutex<Sent>>);

#[derive(Debug, Default)]
struct Sent {
    counts: std::collections::BTreeMap<String, usize>,
    /// The `(PK, SK)` of every item each transaction named, in order.
    transactions: Vec<Vec<(String, String)>>,
}

impl Operations {
    fn sent(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many `operation` calls were sent so far (retries included).
    pub fn count(&self, operation: &str) -> usize {
        self.sent().counts.get(operation).copied().unwrap_or(0)
    }

    /// How many calls of any operation were sent so far (retries included).
    pub fn total(&self) -> usize {
        self.sent().counts.values().sum()
    }

    /// The `(PK, SK)` of the items of every transaction sent so far.
    pub fn transaction_items(&self) -> Vec<Vec<(String, String)>> {
        self.sent().transactions.clone()
    }
}

/// The `(PK, SK)` each action of a TransactWriteItems body names.
fn transaction_keys(body: &[u8]) -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(actions) = json["TransactItems"].as_array() else {
        return Vec::new();
    };
    actions
        .iter()
        .filter_map(|action| action.as_object()?.values().next())
        .map(|action| {
            let key = if action["Key"].is_object() {
                &action["Key"]
            } else {
                &action["Item"]
            };
            let part = |name: &str| key[name]["S"].as_str().unwrap_or_default().to_string();
            (part(crate::table::PK), part(crate::table::SK))
        })
        .collect()
}

impl aws_sdk_dynamodb::config::Intercept for Operations {
    fn name(&self) -> &'static str {
        "Operations"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target");
        let operation = target.and_then(|t| t.rsplit('.').next()).unwrap_or("?");
        let mut sent = self.sent();
        *sent.counts.entry(operation.into()).or_default() += 1;
        if operation == "TransactWriteItems" {
            let keys = transaction_keys(request.body().bytes().unwrap_or_default());
            sent.transactions.push(keys);
        }
        Ok(())
    }
}
