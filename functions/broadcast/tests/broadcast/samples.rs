//! `events/streams/broadcast.json` is a DynamoDB Streams batch as Lambda delivers it.

use aws_lambda_events::dynamodb::Event;
use livestream_broadcast::changes::{SideEffect, interpret};

#[test]
fn the_sample_batch_parses_and_means_a_viewer_update_and_an_expiry() {
    let path = format!(
        "{}/../../events/streams/broadcast.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: Event = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(event.records.len(), 2);
    let first = interpret(&event.records[0]);
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].kind, "viewers.updated");
    assert_eq!(first.events[0].data["viewer_count"], 42);
    assert!(
        !first.events[0]
            .to_client_event()
            .to_string()
            .contains("sk_example")
    );
    let second = interpret(&event.records[1]);
    assert!(second.events.is_empty());
    assert!(
        matches!(&second.effects[..], [SideEffect::ConnectionExpired(c)] if c.connection_id == "ExampleConn2=")
    );
}
