//! Reads a table's change stream (DynamoDB Streams API) and turns its records into the
//! events Lambda hands a stream consumer (`aws_lambda_events::dynamodb::Event`), in the
//! exact JSON shape of an event source mapping. The local stack's poller and the
//! broadcaster's tests use it; on AWS the event source mapping does this.

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

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

fn item(
    map: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>,
) -> serde_dynamo::Item {
    map.cloned().unwrap_or_default().into()
}

fn view_type(view: Option<&aws_sdk_dynamodbstreams::types::StreamViewType>) -> StreamViewType {
    use aws_sdk_dynamodbstreams::types::StreamViewType as Sdk;
    match view {
        Some(Sdk::KeysOnly) => StreamViewType::KeysOnly,
        Some(Sdk::NewImage) => StreamViewType::NewImage,
        Some(Sdk::OldImage) => StreamViewType::OldImage,
        _ => StreamViewType::NewAndOldImages,
    }
}

/// One Streams API record as the Lambda event record an event source mapping sends.
/// Built field by field: a JSON round trip here cost the local poller more than the
/// store read it follows.
pub fn to_event_record(
    record: &Record,
    stream_arn: &str,
    region: &str,
) -> Result<EventRecord, String> {
    let change = record.dynamodb().ok_or("record without a change")?;
    let mut stream_record = StreamRecord::default();
    stream_record.approximate_creation_date_time = change
        .approximate_creation_date_time()
        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default();
    stream_record.keys = item(change.keys());
    stream_record.new_image = item(change.new_image());
    stream_record.old_image = item(change.old_image());
    stream_record.sequence_number = change.sequence_number().map(str::to_string);
    stream_record.size_bytes = change.size_bytes().unwrap_or_default();
    stream_record.stream_view_type = Some(view_type(change.stream_view_type()));
    let mut event = EventRecord::default();
    event.aws_region = region.to_string();
    event.change = stream_record;
    event.event_id = record.event_id().unwrap_or_default().to_string();
    event.event_name = record
        .event_name()
        .map(|n| n.as_str().to_string())
        .ok_or("record without an event name")?;
    event.event_source = Some("aws:dynamodb".into());
    event.event_version = Some(record.event_version().unwrap_or("1.1").to_string());
    event.event_source_arn = Some(stream_arn.to_string());
    // DynamoDB names a user identity only on deletions by TTL; some emulators spell
    // its fields differently, so missing fields fall back to TTL's identity.
    event.user_identity = record.user_identity().map(|identity| {
        let mut user = UserIdentity::default();
        user.type_ = identity.r#type().unwrap_or("Service").to_string();
        user.principal_id = identity
            .principal_id()
            .unwrap_or("dynamodb.amazonaws.com")
            .to_string();
        user
    });
    Ok(event)
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::DateTime;
    use aws_sdk_dynamodbstreams::types::{
        AttributeValue, Identity, OperationType, StreamRecord as SdkRecord,
        StreamViewType as SdkView,
    };

    fn record(name: OperationType, identity: Option<Identity>) -> Record {
        let change = SdkRecord::builder()
            .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
            .keys("PK", AttributeValue::S("STREAM#s1".into()))
            .keys("SK", AttributeValue::S("CHAT#0000000001".into()))
            .new_image("PK", AttributeValue::S("STREAM#s1".into()))
            .new_image("seq", AttributeValue::N("1".into()))
            .sequence_number("4200")
            .size_bytes(64)
            .stream_view_type(SdkView::NewAndOldImages)
            .build();
        Record::builder()
            .event_id("e1")
            .event_name(name)
            .event_version("1.1")
            .dynamodb(change)
            .set_user_identity(identity)
            .build()
    }

    #[test]
    fn a_record_becomes_the_event_an_event_source_mapping_sends() {
        let event =
            to_event_record(&record(OperationType::Insert, None), "arn:s", "eu-west-1").unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(json["eventID"], "e1");
        assert_eq!(json["eventSource"], "aws:dynamodb");
        assert_eq!(json["eventSourceARN"], "arn:s");
        assert_eq!(json["awsRegion"], "eu-west-1");
        let change = &json["dynamodb"];
        assert_eq!(change["Keys"]["SK"]["S"], "CHAT#0000000001");
        assert_eq!(change["NewImage"]["seq"]["N"], "1");
        assert_eq!(change["SequenceNumber"], "4200");
        assert_eq!(change["SizeBytes"], 64);
        assert_eq!(change["StreamViewType"], "NEW_AND_OLD_IMAGES");
        assert_eq!(change["ApproximateCreationDateTime"], 1_700_000_000.0);
        assert!(json.get("userIdentity").is_none_or(|v| v.is_null()));
        // What the broadcaster reads back is what was sent.
        let again: EventRecord = serde_json::from_value(json).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn a_deletion_by_ttl_names_the_service() {
        let identity = Identity::builder().r#type("Service").build();
        let event =
            to_event_record(&record(OperationType::Remove, Some(identity)), "a", "r").unwrap();
        assert_eq!(event.event_name, "REMOVE");
        let user = event.user_identity.unwrap();
        assert_eq!(user.type_, "Service");
        assert_eq!(user.principal_id, "dynamodb.amazonaws.com");
    }
}
