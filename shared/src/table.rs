//! The one DynamoDB table: its key schema, indexes, TTL and stream.
//!
//! The local stack and the tests create the table from [`create_table`]; `infra/`
//! declares the same definition for AWS, and a test compares the two
//! ([`TABLE_DEFINITION`] is what they are compared against).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TimeToLiveStatus,
};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2: &str = "GSI2";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
/// Epoch seconds after which DynamoDB may delete the item.
pub const TTL: &str = "ttl";
/// The entity type of an item (`stream`, `course`, ...).
pub const KIND: &str = "kind";

/// A global secondary index: name, partition key, sort key (all projected).
pub struct IndexDefinition {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
}

/// The whole table as the code uses it.
pub struct TableDefinition {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub indexes: &'static [IndexDefinition],
    pub ttl_attribute: &'static str,
    pub stream_view_type: &'static str,
}

pub const TABLE_DEFINITION: TableDefinition = TableDefinition {
    partition_key: PK,
    sort_key: SK,
    indexes: &[
        IndexDefinition {
            name: GSI1,
            partition_key: GSI1PK,
            sort_key: GSI1SK,
        },
        IndexDefinition {
            name: GSI2,
            partition_key: GSI2PK,
            sort_key: GSI2SK,
        },
    ],
    ttl_attribute: TTL,
    stream_view_type: "NEW_AND_OLD_IMAGES",
};

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema element has both fields")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition has both fields")
}

/// Creates the table (on-demand, stream on, TTL on) if it does not exist yet.
pub async fn create_table(client: &Client, table_name: &str) -> Result<(), String> {
    let def = &TABLE_DEFINITION;
    let exists = client
        .describe_table()
        .table_name(table_name)
        .send()
        .await
        .is_ok();
    if !exists {
        let mut request = client
            .create_table()
            .table_name(table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(def.partition_key, KeyType::Hash))
            .key_schema(key(def.sort_key, KeyType::Range))
            .attribute_definitions(string_attribute(def.partition_key))
            .attribute_definitions(string_attribute(def.sort_key))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(def.stream_view_type))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        for index in def.indexes {
            request = request
                .attribute_definitions(string_attribute(index.partition_key))
                .attribute_definitions(string_attribute(index.sort_key))
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name)
                        .key_schema(key(index.partition_key, KeyType::Hash))
                        .key_schema(key(index.sort_key, KeyType::Range))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(|e| e.to_string())?,
                );
        }
        request
            .send()
            .await
            .map_err(|e| format!("creating table {table_name}: {}", e.into_service_error()))?;
    }
    let ttl_enabled = client
        .describe_time_to_live()
        .table_name(table_name)
        .send()
        .await
        .ok()
        .and_then(|out| out.time_to_live_description)
        .and_then(|d| d.time_to_live_status)
        .is_some_and(|status| status == TimeToLiveStatus::Enabled);
    if ttl_enabled {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(def.ttl_attribute)
                .enabled(true)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("enabling TTL on {table_name}: {}", e.into_service_error()))
}
