//! The local SQS and `@connections` emulations as AWS's own Rust SDK clients see them:
//! every operation an operator or a function uses, driven through `aws-sdk-sqs` and
//! `aws-sdk-apigatewaymanagement` pointed at a stack on free ports, and checked on the
//! fields the SDK parsed (a member the emulation misnames parses to `None`, an error
//! code it misspells to a generic error).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use common::{Client, connection_id, eventually, read_until, store, token};
use futures::SinkExt;
use livestream::auth::Role;
use local::sqs::{LocalQueue, QueueSettings};
use local::{Config, LocalStack};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const REGION: &str = "us-east-1";
const MAIN_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:livestream-fan-out";
const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:livestream-fan-out-dlq";

fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

fn management(endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// The HTTP status of a failed call.
fn status<E>(err: &aws_sdk_sqs::error::SdkError<E>) -> u16 {
    err.raw_response()
        .expect("the service answered")
        .status()
        .as_u16()
}

/// `GetQueueAttributes` of `names` (`All` when empty), keyed by name.
async fn attributes(
    client: &aws_sdk_sqs::Client,
    url: &str,
    names: &[&str],
) -> HashMap<String, String> {
    let names = if names.is_empty() {
        &["All"][..]
    } else {
        names
    };
    client
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(
            names.iter().map(|n| QueueAttributeName::from(*n)).collect(),
        ))
        .send()
        .await
        .unwrap()
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect()
}

/// Visible, in flight, delayed.
async fn counts(client: &aws_sdk_sqs::Client, url: &str) -> (String, String, String) {
    let mut all = attributes(
        client,
        url,
        &[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )
    .await;
    assert_eq!(all.len(), 3, "only what was asked for: {all:?}");
    let mut take = |name: &str| all.remove(name).unwrap();
    (
        take("ApproximateNumberOfMessages"),
        take("ApproximateNumberOfMessagesNotVisible"),
        take("ApproximateNumberOfMessagesDelayed"),
    )
}

fn counted(visible: &str, in_flight: &str, delayed: &str) -> (String, String, String) {
    (visible.into(), in_flight.into(), delayed.into())
}

fn md5_hex(body: &str) -> String {
    format!("{:x}", md5::compute(body.as_bytes()))
}

#[tokio::test]
async fn get_connection_answers_in_api_gateways_shape() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let api = Client::new(&stack.http_url);
    let course_id = api.course(&[]).await;
    let stream_id = &api.scheduled_stream(&course_id, true).await;
    let before_ms = chrono::Utc::now().timestamp_millis();
    let mut request = format!(
        "{}/?token={}&stream_id={stream_id}",
        stack.ws_url,
        token("student-1", Role::Student)
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("user-agent", "aws-wire-test/1.0".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let connection_id = connection_id(&store(&stack), stream_id).await;
    let client = management(&stack.connections_url);

    let info = client
        .get_connection()
        .connection_id(&connection_id)
        .send()
        .await
        .unwrap();
    let connected_ms = info
        .connected_at()
        .expect("connectedAt")
        .to_millis()
        .unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        (before_ms - 1..=now_ms).contains(&connected_ms),
        "{before_ms} <= {connected_ms} <= {now_ms}"
    );
    let first_active_ms = info
        .last_active_at()
        .expect("lastActiveAt")
        .to_millis()
        .unwrap();
    assert!(first_active_ms >= connected_ms);
    let identity = info.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some("aws-wire-test/1.0"));

    // PostToConnection: one frame to the client.
    client
        .post_to_connection()
        .connection_id(&connection_id)
        .data(Blob::new(r#"{"type":"hello"}"#))
        .send()
        .await
        .unwrap();
    let events = read_until(&mut socket, |e| !e.is_empty()).await;
    assert_eq!(events[0]["type"], "hello");

    // A frame from the client moves lastActiveAt on.
    tokio::time::sleep(Duration::from_millis(20)).await;
    socket
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    eventually("lastActiveAt moves on after a frame", || {
        let client = client.clone();
        let connection_id = connection_id.clone();
        async move {
            let info = client
                .get_connection()
                .connection_id(&connection_id)
                .send()
                .await
                .unwrap();
            (info.last_active_at().unwrap().to_millis().unwrap() > first_active_ms).then_some(())
        }
    })
    .await;

    // Over API Gateway's 128 KB: PayloadTooLargeException, 413.
    let err = client
        .post_to_connection()
        .connection_id(&connection_id)
        .data(Blob::new(vec![b'x'; 129 * 1024]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 413);
    assert!(err.into_service_error().is_payload_too_large_exception());

    // DeleteConnection closes it; from then on the connection is gone (410).
    client
        .delete_connection()
        .connection_id(&connection_id)
        .send()
        .await
        .unwrap();
    eventually("the deleted connection is gone", || {
        let client = client.clone();
        let connection_id = connection_id.clone();
        async move {
            match client
                .get_connection()
                .connection_id(&connection_id)
                .send()
                .await
            {
                Ok(_) => None,
                Err(err) => {
                    assert_eq!(err.raw_response().unwrap().status().as_u16(), 410);
                    assert!(err.into_service_error().is_gone_exception());
                    Some(())
                }
            }
        }
    })
    .await;
    for err in [
        client
            .post_to_connection()
            .connection_id("nobody")
            .data(Blob::new("x"))
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_gone_exception(),
        client
            .delete_connection()
            .connection_id("nobody")
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_gone_exception(),
    ] {
        assert!(err, "GoneException for an unknown connection");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn both_queues_are_listed_and_found_by_name() {
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let client = sqs(&stack.sqs_url);
    let queue = &stack.fan_out_queue;
    let main = format!("{}/000000000000/livestream-fan-out", stack.sqs_url);
    let dlq = format!("{}/000000000000/livestream-fan-out-dlq", stack.sqs_url);
    assert_eq!((&queue.url, &queue.dead_letter_url), (&main, &dlq));

    let list = |prefix: Option<&str>| {
        client
            .list_queues()
            .set_queue_name_prefix(prefix.map(str::to_string))
            .send()
    };
    let both = [main.as_str(), dlq.as_str()];
    assert_eq!(list(None).await.unwrap().queue_urls(), both);
    assert_eq!(
        list(Some("livestream-fan-out")).await.unwrap().queue_urls(),
        both
    );
    assert_eq!(
        list(Some("livestream-fan-out-d"))
            .await
            .unwrap()
            .queue_urls(),
        [dlq.as_str()]
    );
    let none = list(Some("Livestream")).await.unwrap();
    assert!(none.queue_urls().is_empty(), "prefixes are case-sensitive");

    // Pages of MaxResults, NextToken between them.
    let first = client.list_queues().max_results(1).send().await.unwrap();
    assert_eq!(first.queue_urls(), [main.as_str()]);
    let next = first.next_token().expect("a next page");
    let second = client
        .list_queues()
        .max_results(1)
        .next_token(next)
        .send()
        .await
        .unwrap();
    assert_eq!(second.queue_urls(), [dlq.as_str()]);
    assert_eq!(second.next_token(), None);

    for (name, url) in [
        ("livestream-fan-out", &main),
        ("livestream-fan-out-dlq", &dlq),
    ] {
        let found = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(found.queue_url(), Some(url.as_str()));
    }
    let err = client
        .get_queue_url()
        .queue_name("livestream-fan-out-nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let err = err.into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    assert_eq!(err.code(), Some("AWS.SimpleQueueService.NonExistentQueue"));
    assert_eq!(err.message(), Some("The specified queue does not exist."));
    let err = client
        .get_queue_url()
        .queue_name("livestream-fan-out")
        .queue_owner_aws_account_id("123456789012")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_queue_does_not_exist());

    // Actions SQS has that are not served here say so, in SQS's terms.
    let err = client
        .create_queue()
        .queue_name("another")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.into_service_error().is_unsupported_operation());
    stack.shutdown().await;
}

#[tokio::test]
async fn queue_attributes_count_messages_and_carry_the_redrive_policy() {
    let started = chrono::Utc::now().timestamp();
    let stack = LocalStack::start(Config::on_free_ports(None))
        .await
        .unwrap();
    let client = sqs(&stack.sqs_url);
    let (main, dlq) = (
        &stack.fan_out_queue.url,
        &stack.fan_out_queue.dead_letter_url,
    );

    // Delayed pages stay out of the event source mapping's reach.
    let sent = client
        .send_message_batch()
        .queue_url(main)
        .set_entries(Some(
            (0..3)
                .map(|i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("page-{i}"))
                        .message_body(format!("page {i}"))
                        .delay_seconds(900)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.successful().len(), 3);
    assert!(sent.failed().is_empty());
    for (entry, i) in sent.successful().iter().zip(0..) {
        assert_eq!(entry.id(), format!("page-{i}"));
        assert_eq!(entry.md5_of_message_body(), md5_hex(&format!("page {i}")));
    }
    // Nothing consumes the dead-letter queue.
    for (body, delay) in [("one", 0), ("two", 0), ("later", 900)] {
        let sent = client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.md5_of_message_body(), Some(md5_hex(body).as_str()));
        assert_eq!(sent.message_id().map(str::len), Some(36), "a UUID");
    }
    let received = client
        .receive_message()
        .queue_url(dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1, "one message by default");

    let all = attributes(&client, main, &[]).await;
    assert_eq!(all["QueueArn"], MAIN_ARN);
    assert_eq!(all["ApproximateNumberOfMessages"], "0");
    assert_eq!(all["ApproximateNumberOfMessagesNotVisible"], "0");
    assert_eq!(all["ApproximateNumberOfMessagesDelayed"], "3");
    assert_eq!(all["VisibilityTimeout"], "30");
    assert_eq!(all["MessageRetentionPeriod"], "3600");
    assert_eq!(all["DelaySeconds"], "0");
    assert_eq!(all["MaximumMessageSize"], "262144");
    let created: i64 = all["CreatedTimestamp"].parse().unwrap();
    assert!((started - 1..=chrono::Utc::now().timestamp()).contains(&created));
    let redrive: Value = serde_json::from_str(&all["RedrivePolicy"]).unwrap();
    assert_eq!(
        redrive,
        json!({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 3})
    );

    let all = attributes(&client, dlq, &["All"]).await;
    assert_eq!(all["QueueArn"], DLQ_ARN);
    assert_eq!(all["MessageRetentionPeriod"], "1209600");
    assert!(!all.contains_key("RedrivePolicy"));
    assert_eq!(counts(&client, dlq).await, counted("1", "1", "1"));

    let only = attributes(&client, main, &["QueueArn", "RedrivePolicy"]).await;
    assert_eq!(
        only.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["QueueArn", "RedrivePolicy"])
    );
    let none = client
        .get_queue_attributes()
        .queue_url(main)
        .send()
        .await
        .unwrap();
    assert!(
        none.attributes().is_none(),
        "nothing asked, nothing answered"
    );

    let err = client
        .get_queue_attributes()
        .queue_url(main)
        .attribute_names(QueueAttributeName::from("NoSuchAttribute"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.into_service_error().is_invalid_attribute_name());
    let err = client
        .get_queue_attributes()
        .queue_url(format!("{}/000000000000/nope", stack.sqs_url))
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_queue_does_not_exist());
    stack.shutdown().await;
}

#[tokio::test]
async fn a_page_that_keeps_failing_lands_in_the_dead_letter_queue_where_an_operator_drains_it() {
    let stack = LocalStack::start(Config {
        fan_out_queue: QueueSettings {
            visibility_timeout: Duration::from_millis(100),
            max_receive_count: 2,
            ..QueueSettings::default()
        },
        ..Config::on_free_ports(None)
    })
    .await
    .unwrap();
    let client = sqs(&stack.sqs_url);
    let (main, dlq) = (
        &stack.fan_out_queue.url,
        &stack.fan_out_queue.dead_letter_url,
    );
    // The fan-out worker fails what is not a page; after two receives it moves.
    client
        .send_message()
        .queue_url(main)
        .message_body("not a page")
        .send()
        .await
        .unwrap();
    let sqs_client = &client;
    eventually("the message reaches the dead-letter queue", || async move {
        (counts(sqs_client, dlq).await == counted("1", "0", "0")).then_some(())
    })
    .await;
    assert_eq!(counts(&client, main).await, counted("0", "0", "0"));
    let redrive: Value =
        serde_json::from_str(&attributes(&client, main, &["RedrivePolicy"]).await["RedrivePolicy"])
            .unwrap();
    assert_eq!(redrive["maxReceiveCount"], 2);

    let sources = client
        .list_dead_letter_source_queues()
        .queue_url(dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls(), [main.as_str()]);

    let received = client
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let [message] = received.messages() else {
        panic!("one message: {received:?}");
    };
    assert_eq!(message.body(), Some("not a page"));
    assert_eq!(message.md5_of_body(), Some(md5_hex("not a page").as_str()));
    let attributes = message.attributes().expect("the attributes asked for");
    let attribute = |name: MessageSystemAttributeName| attributes.get(&name).map(String::as_str);
    assert_eq!(
        attribute(MessageSystemAttributeName::ApproximateReceiveCount),
        Some("3"),
        "two deliveries to the worker, one to the operator"
    );
    assert_eq!(
        attribute(MessageSystemAttributeName::DeadLetterQueueSourceArn),
        Some(MAIN_ARN)
    );
    let sent_at: i64 = attribute(MessageSystemAttributeName::SentTimestamp)
        .unwrap()
        .parse()
        .unwrap();
    let first_received: i64 =
        attribute(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
            .unwrap()
            .parse()
            .unwrap();
    assert!(sent_at <= first_received && first_received <= chrono::Utc::now().timestamp_millis());

    // In flight now: another receive finds nothing.
    let again = client
        .receive_message()
        .queue_url(dlq)
        .send()
        .await
        .unwrap();
    assert!(again.messages().is_empty());
    assert_eq!(counts(&client, dlq).await, counted("0", "1", "0"));

    let err = client
        .delete_message()
        .queue_url(dlq)
        .receipt_handle("not-a-receipt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    assert!(err.into_service_error().is_receipt_handle_is_invalid());
    client
        .delete_message()
        .queue_url(dlq)
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(counts(&client, dlq).await, counted("0", "0", "0"));
    assert!(stack.fan_out_queue.dead_letters().is_empty());

    // PurgeQueue empties it, once a minute.
    for body in ["a", "b"] {
        client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(counts(&client, dlq).await, counted("2", "0", "0"));
    client.purge_queue().queue_url(dlq).send().await.unwrap();
    assert_eq!(counts(&client, dlq).await, counted("0", "0", "0"));
    let err = client
        .purge_queue()
        .queue_url(dlq)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    assert!(err.into_service_error().is_purge_queue_in_progress());
    stack.shutdown().await;
}

/// The main queue without its event source mapping, so that nothing but the test
/// receives from it.
async fn unconsumed_queue() -> (Arc<LocalQueue>, aws_sdk_sqs::Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let queue = Arc::new(LocalQueue::new(
        &endpoint,
        "livestream-fan-out",
        QueueSettings {
            max_receive_count: 2,
            ..QueueSettings::default()
        },
    ));
    tokio::spawn(axum::serve(listener, local::sqs::router(queue.clone())).into_future());
    (queue, sqs(&endpoint))
}

#[tokio::test]
async fn the_main_queue_receives_deletes_and_purges_as_sqs_does() {
    let (queue, client) = unconsumed_queue().await;
    let url = queue.url.as_str();
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };

    // Batches: checked whole first, then entry by entry.
    let err = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(
            (0..11).map(|i| entry(&format!("e{i}"), "x")).collect(),
        ))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_too_many_entries_in_batch_request()
    );
    let err = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(Vec::new()))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_empty_batch_request());
    let err = client
        .send_message_batch()
        .queue_url(url)
        .entries(entry("same", "x"))
        .entries(entry("same", "y"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_batch_entry_ids_not_distinct());
    let sent = client
        .send_message_batch()
        .queue_url(url)
        .entries(entry("a", "first"))
        .entries(entry("b", "second"))
        .entries(entry("c", "third"))
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("late")
                .message_body("too late")
                .delay_seconds(901)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.successful().len(), 3);
    let [failed] = sent.failed() else {
        panic!("one failed entry: {sent:?}");
    };
    assert_eq!(
        (failed.id(), failed.code(), failed.sender_fault()),
        ("late", "InvalidParameterValue", true)
    );
    let err = client
        .send_message()
        .queue_url(url)
        .message_body("bell \u{7}")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_message_contents());
    assert_eq!(queue.sent(), 3);

    let err = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(
        err.into_service_error().code(),
        Some("InvalidParameterValue")
    );

    let received = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, ["first", "second", "third"], "oldest first");
    for message in received.messages() {
        let attributes = message.attributes().unwrap();
        assert_eq!(attributes.len(), 1, "only what was asked for");
        assert_eq!(
            attributes[&MessageSystemAttributeName::ApproximateReceiveCount],
            "1"
        );
    }
    assert_eq!(counts(&client, url).await, counted("0", "3", "0"));
    let [first, second, third] = received.messages() else {
        unreachable!()
    };
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(first.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    // Deleting twice is no error, as on SQS.
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(first.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // ChangeMessageVisibility 0: the second message is visible again at once.
    client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(second.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let err = client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(first.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_message_not_inflight());
    // The older member, `AttributeNames`, as the CLI's --attribute-names sends it.
    #[allow(deprecated)]
    let again = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let [second_again] = again.messages() else {
        panic!("the second message alone: {again:?}");
    };
    assert_eq!(second_again.message_id(), second.message_id());
    assert_ne!(second_again.receipt_handle(), second.receipt_handle());
    assert_eq!(
        second_again.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );

    // DeleteMessageBatch: entry by entry.
    let deleted = client
        .delete_message_batch()
        .queue_url(url)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("third")
                .receipt_handle(third.receipt_handle().unwrap())
                .build()
                .unwrap(),
        )
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("bogus")
                .receipt_handle("bogus")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted
            .successful()
            .iter()
            .map(|e| e.id())
            .collect::<Vec<_>>(),
        ["third"]
    );
    let [refused] = deleted.failed() else {
        panic!("{deleted:?}")
    };
    assert_eq!(
        (refused.id(), refused.code()),
        ("bogus", "ReceiptHandleIsInvalid")
    );

    // Received twice (the most its redrive policy allows): the next receive moves it
    // to the dead-letter queue instead of handing it out.
    let third_receive = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(third_receive.messages().is_empty());
    assert_eq!(queue.dead_letters(), ["second"]);
    assert_eq!(counts(&client, url).await, counted("0", "0", "0"));

    // A long poll returns as soon as a message arrives.
    let sender = client.clone();
    let target = url.to_string();
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender
            .send_message()
            .queue_url(target)
            .message_body("awaited")
            .send()
            .await
            .unwrap();
    });
    let polled = client
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(10)
        .send()
        .await
        .unwrap();
    assert_eq!(polled.messages()[0].body(), Some("awaited"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let empty = client
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(empty.messages().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "it waited"
    );

    // PurgeQueue takes in-flight messages too.
    client
        .send_message()
        .queue_url(url)
        .message_body("waiting")
        .send()
        .await
        .unwrap();
    assert_eq!(counts(&client, url).await, counted("1", "1", "0"));
    client.purge_queue().queue_url(url).send().await.unwrap();
    assert_eq!(counts(&client, url).await, counted("0", "0", "0"));
    assert_eq!(queue.depth(), 0);
    assert_eq!(queue.dead_letters(), ["second"], "its own queue only");
}
