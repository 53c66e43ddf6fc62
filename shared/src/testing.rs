//! Test support: a real DynamoDB (dynoxide, embedded) on a random loopback port.
//!
//! Every [`TestEnv`] has its own in-memory database and table, so tests run in
//! parallel without sharing state. Nothing here fakes the store: requests go through
//! `aws-sdk-dynamodb` over HTTP exactly as in production.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use crate::AppState;
use crate::auth::{Authenticator, Identity, Role, TokenSpec, mint_hs256};
use crate::store::Store;

/// The HS256 secret of test and local tokens.
pub const TEST_SECRET: &[u8] = b"local-development-secret-not-for-production-use";
pub const TEST_TABLE: &str = "livestream";

/// An embedded DynamoDB served over HTTP on 127.0.0.1.
pub struct EmbeddedDynamo {
    pub endpoint: String,
    pub db: dynoxide::Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl EmbeddedDynamo {
    /// Starts a server on a random port over `db`.
    pub async fn serve(db: dynoxide::Database, addr: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = db.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = dynoxide::server::serve_with_shutdown(listener, served, shutdown).await
            {
                tracing::error!(error = %e, "embedded DynamoDB stopped");
            }
        });
        Ok(Self {
            endpoint,
            db,
            stop: Some(stop),
        })
    }

    /// An in-memory database on a random port.
    pub async fn memory() -> Self {
        let db = dynoxide::Database::memory().expect("in-memory SQLite opens");
        Self::serve(db, "127.0.0.1:0")
            .await
            .expect("loopback port binds")
    }

    /// The SDK configuration that reaches this server (dummy credentials, fixed region).
    pub fn sdk_config(&self) -> aws_sdk_dynamodb::Config {
        dynamo_config(&self.endpoint)
    }

    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(self.sdk_config())
    }
}

impl Drop for EmbeddedDynamo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Client configuration for a DynamoDB endpoint on this machine.
pub fn dynamo_config(endpoint: &str) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .endpoint_url(endpoint)
        .build()
}

/// A fresh table with the production definition, and the state handlers borrow.
pub struct TestEnv {
    pub dynamo: EmbeddedDynamo,
    pub state: AppState,
}

impl TestEnv {
    pub async fn start() -> Self {
        let dynamo = EmbeddedDynamo::memory().await;
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
