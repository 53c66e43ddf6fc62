//! The broadcaster: DynamoDB Streams records in, WebSocket events out.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use livestream::realtime::Connections;
use livestream::store::Store;

/// What the broadcaster borrows: the table (connections) and `@connections`.
pub struct BroadcastState {
    pub store: Store,
    pub connections: Connections,
}

impl BroadcastState {
    pub async fn from_env() -> Result<Self, String> {
        Ok(Self {
            store: Store::from_env().await?,
            connections: Connections::from_env().await?,
        })
    }
}

/// Handles one batch of change-stream records; failed records are reported so only
/// they are retried.
pub async fn handle(_state: &BroadcastState, _event: Event) -> DynamoDbEventResponse {
    // Placeholder until the broadcaster lands.
    DynamoDbEventResponse::default()
}

/// Runs the broadcaster as a Lambda.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    livestream::telemetry::init();
    let state: &'static BroadcastState = Box::leak(Box::new(BroadcastState::from_env().await?));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Event>| async move {
            Ok::<_, std::convert::Infallible>(handle(state, event.payload).await)
        },
    ))
    .await
}
