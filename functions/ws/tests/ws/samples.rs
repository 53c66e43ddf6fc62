//! The sample events in `events/ws/` are what `cargo lambda invoke` sends: they must
//! parse as API Gateway WebSocket events and carry a token the local stack accepts.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use livestream::auth::Authenticator;
use livestream::testing::TEST_SECRET;

fn sample(name: &str) -> ApiGatewayWebsocketProxyRequest {
    let path = format!("{}/../../events/ws/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn every_sample_parses_with_its_route_and_the_connect_token_is_valid() {
    for (name, route) in [
        ("ws-connect", "$connect"),
        ("ws-disconnect", "$disconnect"),
        ("ws-default-ping", "$default"),
        ("ws-default-chat", "$default"),
        ("ws-default-catch-up", "$default"),
    ] {
        let event = sample(name);
        assert_eq!(
            event.request_context.route_key.as_deref(),
            Some(route),
            "{name}"
        );
        assert!(event.request_context.connection_id.is_some(), "{name}");
    }
    let connect = sample("ws-connect");
    let token = connect.query_string_parameters.first("token").unwrap();
    let auth = Authenticator::hs256(TEST_SECRET, None, None).unwrap();
    assert_eq!(auth.authenticate(token).await.unwrap().user_id, "student-1");
    let samples =
        std::fs::read_dir(format!("{}/../../events/ws", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(samples.count(), 5, "every sample is checked above");
}
