//! The single-table DynamoDB store.
//!
//! One module owns the table: [`keys`] builds every key, and each access pattern is a
//! named method (`live_streams`, `streams_of_instructor`, `enrollment`, ...). Every read
//! is a GetItem, a Query or a BatchGetItem on known keys; nothing here issues a Scan.
//! State changes are conditional writes and multi-item invariants are transactions, so
//! concurrent requests cannot break them; a failed condition surfaces as
//! [`StoreError::ConditionFailed`] and a cancelled transaction names its reasons.

pub mod attendance;
pub mod chat;
pub mod connections;
pub mod courses;
pub mod cursor;
pub mod keys;
pub mod lifecycle;
pub mod participants;
pub mod questions;
pub mod replay;
pub mod streams;
pub mod update;
pub mod video;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::telemetry::{self, DynamoOutcome};

pub use cursor::Cursor;
pub use update::Update;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// What can go wrong talking to the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold (wrong state, duplicate, missing item).
    #[error("condition check failed")]
    ConditionFailed,
    /// A transaction was cancelled; one reason code per action (`None` for actions
    /// that were fine), in the order the actions were given.
    #[error("transaction cancelled: {0:?}")]
    TransactionCancelled(Vec<Option<String>>),
    /// DynamoDB throttled or a transaction conflicted; the caller may retry.
    #[error("temporarily unavailable: {0}")]
    Busy(String),
    /// Any other failure of the call.
    #[error("dynamodb: {0}")]
    Dynamo(String),
    /// The stream is ended or cancelled: nothing about its class changes any more.
    #[error("the stream is finished")]
    StreamFinished,
    /// A client's page cursor belongs to another listing.
    #[error("invalid cursor")]
    InvalidCursor,
    /// An item does not have the shape this code writes.
    #[error("malformed item: {0}")]
    Malformed(String),
}

impl StoreError {
    /// The error of a failed call, its outcome counted (see [`outcome_of`]).
    fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.as_service_error().and_then(|e| e.code());
        match code.and_then(outcome_of) {
            Some(outcome) => {
                telemetry::record_dynamo(outcome);
                match outcome {
                    DynamoOutcome::ConditionFailed => Self::ConditionFailed,
                    _ => Self::Busy(code.unwrap_or_default().to_string()),
                }
            }
            None => Self::Dynamo(format!(
                "{}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            )),
        }
    }

    /// True when the transaction's action at `index` failed its condition.
    pub fn failed_condition_at(&self, index: usize) -> bool {
        matches!(self, Self::TransactionCancelled(reasons)
            if reasons.get(index).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed"))
    }
}

/// Done, for a write whose condition says its work is done already or no longer
/// wanted: [`StoreError::ConditionFailed`] (nothing was written) is no error here.
pub(crate) fn done_unless_failed<T>(result: Result<T, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::ConditionFailed) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The countable outcome of a DynamoDB error code; `None` for other failures.
fn outcome_of(code: &str) -> Option<DynamoOutcome<'static>> {
    match code {
        "ConditionalCheckFailedException" => Some(DynamoOutcome::ConditionFailed),
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "RequestLimitExceeded" => Some(DynamoOutcome::Throttled),
        "TransactionConflictException" | "TransactionInProgressException" => {
            Some(DynamoOutcome::TransactionConflict)
        }
        _ => None,
    }
}

/// One page of a listing and the opaque cursor of the next page, if any.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Which index and partition a [`Store::query_page`] reads.
#[derive(Clone)]
pub struct QuerySpec<'a> {
    pub index: Option<&'static str>,
    pub partition_attr: &'static str,
    pub partition_value: String,
    pub sort_attr: &'static str,
    /// Only sort keys starting with this.
    pub sort_prefix: Option<&'a str>,
    /// Only sort keys strictly greater than this (read forward) or less (backward).
    pub sort_after: Option<String>,
    pub forward: bool,
    pub limit: i32,
    /// Only these attributes of each item (all of them when `None`).
    pub projection: Option<&'static [&'static str]>,
}

impl<'a> QuerySpec<'a> {
    /// A stream's own items whose sort key starts with `prefix` (its chat, questions,
    /// votes, participants), oldest first, whole items, 1,000 a page.
    pub fn stream_items(stream_id: &str, prefix: &'a str) -> Self {
        Self {
            index: None,
            partition_attr: crate::table::PK,
            partition_value: keys::stream_pk(stream_id),
            sort_attr: crate::table::SK,
            sort_prefix: Some(prefix),
            sort_after: None,
            forward: true,
            limit: 1000,
            projection: None,
        }
    }
}

/// The table and a client to reach it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    /// Where each stream's chat stood when this process last wrote to it, shared by
    /// the clones (see [`chat::ChatTips`]).
    chat_tips: std::sync::Arc<chat::ChatTips>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            chat_tips: Default::default(),
        }
    }

    /// From `TABLE_NAME`; `DYNAMODB_ENDPOINT` points at a local table (the local stack).
    pub async fn from_env() -> Result<Self, String> {
        let table = std::env::var("TABLE_NAME")
            .map_err(|_| "TABLE_NAME is not set: the DynamoDB table to use".to_string())?;
        let config = crate::aws::sdk_config().await;
        let endpoint = std::env::var("DYNAMODB_ENDPOINT").ok();
        Ok(Self::new(
            Client::from_conf(crate::aws::dynamodb_config(config, endpoint)),
            table,
        ))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(crate::table::PK, AttributeValue::S(pk))
            .key(crate::table::SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(StoreError::from_sdk)
    }

    pub(crate) async fn get_as<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        self.get(pk, sk).await?.map(from_item).transpose()
    }

    /// Puts an item that must not exist yet.
    pub(crate) async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::from_sdk)
    }

    /// The transaction action that puts an item which must not exist yet.
    pub(crate) fn put_new_action(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::Dynamo(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Reads up to 100 items by key, in no particular order.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| keys::key(pk.clone(), sk.clone()))
                .collect();
            // BatchGetItem may return only part of the keys under load; ask again for the rest.
            for attempt in 0..5 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Dynamo(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(StoreError::from_sdk)?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                if let Some(mut unprocessed) = out.unprocessed_keys {
                    pending = unprocessed
                        .remove(&self.table)
                        .map(|k| k.keys)
                        .unwrap_or_default();
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Busy("batch get left keys unprocessed".into()));
            }
        }
        Ok(found)
    }

    /// One page of a Query over a partition of the table or of an index.
    pub(crate) async fn query_page(
        &self,
        spec: QuerySpec<'_>,
        cursor: Option<&Cursor>,
    ) -> Result<(Vec<Item>, Option<Cursor>), StoreError> {
        let mut condition = "#pk = :pk".to_string();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(spec.index.map(str::to_string))
            .expression_attribute_names("#pk", spec.partition_attr)
            .expression_attribute_values(":pk", AttributeValue::S(spec.partition_value.clone()))
            .scan_index_forward(spec.forward)
            .limit(spec.limit)
            .consistent_read(spec.index.is_none());
        if let Some(prefix) = spec.sort_prefix {
            condition.push_str(" AND begins_with(#sk, :prefix)");
            request = request
                .expression_attribute_names("#sk", spec.sort_attr)
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_string()));
        } else if let Some(after) = &spec.sort_after {
            condition.push_str(if spec.forward {
                " AND #sk > :after"
            } else {
                " AND #sk < :after"
            });
            request = request
                .expression_attribute_names("#sk", spec.sort_attr)
                .expression_attribute_values(":after", AttributeValue::S(after.clone()));
        }
        if let Some(cursor) = cursor {
            request = request.set_exclusive_start_key(Some(cursor.start_key(&spec)?));
        }
        if let Some(attributes) = spec.projection {
            let mut projection = String::new();
            for (i, attribute) in attributes.iter().enumerate() {
                let name = format!("#p{i}");
                projection.push_str(if i == 0 { "" } else { ", " });
                projection.push_str(&name);
                request = request.expression_attribute_names(name, *attribute);
            }
            request = request.projection_expression(projection);
        }
        let out = request
            .key_condition_expression(condition)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let next = out.last_evaluated_key.map(|k| Cursor::from_key(&k));
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Every item of a Query, reading page after page, at most `max` items.
    pub(crate) async fn query_all(
        &self,
        spec: QuerySpec<'_>,
        max: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut all = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let (items, next) = self.query_page(spec.clone(), cursor.as_ref()).await?;
            for item in items {
                if all.len() == max {
                    return Ok(all);
                }
                all.push(item);
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// The items of a sweep index (see [`keys::SWEEP_SHARDS`]) whose sort key sorts
    /// before `cutoff`, from every shard: the sharding stays a matter of the keys.
    pub(crate) async fn sweep_index_before(
        &self,
        index: &'static str,
        partition_attr: &'static str,
        sort_attr: &'static str,
        partition: fn(u32) -> String,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for shard in 0..keys::SWEEP_SHARDS {
            let spec = QuerySpec {
                index: Some(index),
                partition_attr,
                partition_value: partition(shard),
                sort_attr,
                sort_prefix: None,
                sort_after: Some(crate::model::sort_time(cutoff)),
                forward: false,
                limit: 500,
                projection: None,
            };
            items.extend(self.query_all(spec, 5000).await?);
        }
        Ok(items)
    }

    /// Runs a transaction; a cancellation reports the reason of each action.
    pub async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                    let reasons: Vec<Option<String>> = e
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_string))
                        .collect();
                    telemetry::record_dynamo(DynamoOutcome::TransactionCanceled(&reasons));
                    if reasons
                        .iter()
                        .flatten()
                        .any(|c| c == "TransactionConflict" || c == "ThrottlingError")
                    {
                        StoreError::Busy(format!("{reasons:?}"))
                    } else {
                        StoreError::TransactionCancelled(reasons)
                    }
                }
                _ => StoreError::from_sdk(err),
            })
    }
}

impl From<StoreError> for ApiError {
    /// A stale or foreign page cursor is the client's mistake; every other store
    /// failure is ours.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidCursor => {
                ApiError::bad_request("invalid_cursor", "cursor is not valid for this listing")
            }
            StoreError::StreamFinished => ApiError::stream_finished(),
            StoreError::Busy(detail) => ApiError::Unavailable(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Turns a stored item into a model, ignoring the key attributes.
pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed(e.to_string()))
}

/// A model as an item with its primary key and entity kind.
pub(crate) fn keyed_item<T: Serialize>(
    value: &T,
    pk: String,
    sk: String,
    kind: &str,
) -> Result<Item, StoreError> {
    let mut item = to_item(value)?;
    item.insert(crate::table::PK.into(), AttributeValue::S(pk));
    item.insert(crate::table::SK.into(), AttributeValue::S(sk));
    item.insert(crate::table::KIND.into(), AttributeValue::S(kind.into()));
    Ok(item)
}

/// Turns a model into an item (keys are added by the caller).
pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Malformed(e.to_string()))
}

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A time attribute value, in the RFC 3339 form the models serialize.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> AttributeValue {
    AttributeValue::S(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A number attribute value.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::counted::Counted;
    use crate::telemetry::{DYNAMO_CONDITION_FAILED, DYNAMO_TRANSACTION_CANCELED};
    use crate::testing::TestEnv;

    #[test]
    fn error_codes_have_their_outcome() {
        assert_eq!(
            outcome_of("ConditionalCheckFailedException"),
            Some(DynamoOutcome::ConditionFailed)
        );
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            assert_eq!(outcome_of(code), Some(DynamoOutcome::Throttled), "{code}");
        }
        assert_eq!(
            outcome_of("TransactionConflictException"),
            Some(DynamoOutcome::TransactionConflict)
        );
        assert_eq!(outcome_of("ValidationException"), None);
    }

    fn item(pk: &str) -> Item {
        HashMap::from([
            (crate::table::PK.to_string(), AttributeValue::S(pk.into())),
            (crate::table::SK.to_string(), AttributeValue::S("X".into())),
        ])
    }

    #[test]
    fn failed_conditions_and_cancelled_transactions_are_counted() {
        let counted = Counted::default();
        counted.block_on(async {
            let env = TestEnv::start().await;
            let store = env.store();
            store.put_new(item("A")).await.unwrap();
            let again = store.put_new(item("A")).await;
            assert!(
                matches!(again, Err(StoreError::ConditionFailed)),
                "{again:?}"
            );
            let actions = vec![
                store.put_new_action(item("B")).unwrap(),
                store.put_new_action(item("A")).unwrap(),
            ];
            let cancelled = store.transact(actions).await.unwrap_err();
            assert!(cancelled.failed_condition_at(1), "{cancelled:?}");
        });
        assert_eq!(counted.get(DYNAMO_CONDITION_FAILED, &[]), 1);
        assert_eq!(
            counted.get(
                DYNAMO_TRANSACTION_CANCELED,
                &[("Reason", "ConditionalCheckFailed")]
            ),
            1
        );
    }
}
