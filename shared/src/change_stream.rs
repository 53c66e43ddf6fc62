//! Reads a table's change stream (DynamoDB Streams API) and turns its records into the
//! events Lambda hands a stream consumer (`aws_lambda_events::dynamodb::Event`), in the
//! exact JSON shape of an event source mapping. The local stack's poller and the
//! broadcaster's tests use it; on AWS the event source mapping does this.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{Value, json};

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Only changes made after the reader opens.
    Latest,
    /// Every change still in the stream.
    TrimHorizon,
}

/// Follows the change stream of one table (one shard at a time, in order).
pub struct ChangeStreamReader {
    client: Client,
    stream_arn: String,
    region: String,
    shard_id: String,
    iterator: Option<String>,
}

fn item_json(
    map: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>,
) -> Option<Value> {
    let map = map?;
    let item: serde_dynamo::Item = map
        .iter()
        .map(|(k, v)| (k.clone(), serde_dynamo::AttributeValue::from(v.clone())))
        .collect::<std::collections::HashMap<_, _>>()
        .into();
    serde_json::to_value(item).ok()
}

/// One Streams API record as the Lambda event record an event source mapping sends.
pub fn to_event_record(
    record: &Record,
    stream_arn: &str,
    region: &str,
) -> Result<EventRecord, String> {
    let change = record.dynamodb().ok_or("record without a change")?;
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.approximate_creation_date_time().map(|t| t.as_secs_f64()).unwrap_or_default(),
        "SequenceNumber": change.sequence_number(),
        "SizeBytes": change.size_bytes().unwrap_or_default(),
        "StreamViewType": change.stream_view_type().map(|t| t.as_str()).unwrap_or("NEW_AND_OLD_IMAGES"),
    });
    for (name, image) in [
        ("Keys", change.keys()),
        ("NewImage", change.new_image()),
        ("OldImage", change.old_image()),
    ] {
        if let Some(value) = item_json(image) {
            dynamodb[name] = value;
        }
    }
    let mut event = json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    });
    // DynamoDB names a user identity only on deletions by TTL; some emulators spell
    // its fields differently, so missing fields fall back to TTL's identity.
    if let Some(identity) = record.user_identity() {
        event["userIdentity"] = json!({
            "type": identity.r#type().unwrap_or("Service"),
            "principalId": identity.principal_id().unwrap_or("dynamodb.amazonaws.com"),
        });
    }
    let text = event.to_string();
    serde_json::from_value(event).map_err(|e| format!("record does not convert: {e}: {text}"))
}

impl ChangeStreamReader {
    /// Opens the stream of `table` with a Streams client reaching the same endpoint.
    pub async fn open(
        client: Client,
        table: &str,
        region: &str,
        start: StartAt,
    ) -> Result<Self, String> {
        let streams = client
            .list_streams()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "listing streams: {}",
                    aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                )
            })?;
        let stream_arn = streams
            .streams()
            .first()
            .and_then(|s| s.stream_arn())
            .ok_or_else(|| format!("table {table} has no stream"))?
            .to_string();
        let mut reader = Self {
            client,
            stream_arn,
            region: region.to_string(),
            shard_id: String::new(),
            iterator: None,
        };
        reader.open_shard(start).await?;
        Ok(reader)
    }

    async fn open_shard(&mut self, start: StartAt) -> Result<(), String> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| format!("describing stream: {e}"))?;
        let shards = description
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default();
        // The open shard is the last one (it has no ending sequence number).
        let shard = shards
            .iter()
            .find(|s| {
                s.sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none()
            })
            .or_else(|| shards.last())
            .ok_or("stream has no shard")?;
        let shard_id = shard.shard_id().unwrap_or_default().to_string();
        let iterator_type = match start {
            StartAt::Latest => ShardIteratorType::Latest,
            StartAt::TrimHorizon => ShardIteratorType::TrimHorizon,
        };
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&shard_id)
            .shard_iterator_type(iterator_type)
            .send()
            .await
            .map_err(|e| format!("getting shard iterator: {e}"))?;
        self.shard_id = shard_id;
        self.iterator = out.shard_iterator;
        Ok(())
    }

    /// The stream's ARN, as event records name it.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The next records (up to `limit`), as Lambda event records; empty when none.
    pub async fn next_records(&mut self, limit: i32) -> Result<Vec<EventRecord>, String> {
        let Some(iterator) = self.iterator.clone() else {
            self.open_shard(StartAt::TrimHorizon).await?;
            return Ok(Vec::new());
        };
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "getting records: {}",
                    aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)
                )
            })?;
        self.iterator = out.next_shard_iterator().map(str::to_string);
        out.records()
            .iter()
            .map(|r| to_event_record(r, &self.stream_arn, &self.region))
            .collect()
    }

    /// Reads until no record is left (for tests): everything written so far.
    pub async fn drain(&mut self) -> Result<Event, String> {
        let mut records = Vec::new();
        loop {
            let batch = self.next_records(1000).await?;
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
        }
        let mut event = Event::default();
        event.records = records;
        Ok(event)
    }
}
