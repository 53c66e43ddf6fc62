//! WebSocket connections: recorded on `$connect`, listed per stream by the
//! broadcaster, deleted on `$disconnect`, on a 410 Gone, or by TTL.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::keys::{self, CONNECTION_SK};
use super::{QuerySpec, Store, StoreError, Update, done_unless_failed, from_item, n, s, to_item};
use crate::model::{Connection, Recipient, sort_time};
use crate::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, KIND, TTL};

/// Chat actions over one connection: a sustained rate of one per this many ms...
pub const CHAT_TOKEN_INTERVAL_MS: i64 = 200;
/// ...with bursts of this many.
pub const CHAT_TOKEN_BURST: i64 = 10;

/// The answer of the connection's chat token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatToken {
    Granted,
    /// Try again in this many milliseconds.
    Wait(i64),
}

impl Store {
    pub async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.put_new(connection_item(connection)?).await
    }

    /// Marks a connection as one whose user may watch the stream while it is private
    /// (checked when the stream turned private). A connection gone meanwhile is left gone.
    pub async fn allow_private(&self, connection_id: &str) -> Result<(), StoreError> {
        let update = Update::new().set("private_ok", AttributeValue::Bool(true));
        self.update_open_connection(connection_id, update).await
    }

    /// `update` of a connection that still exists; one gone meanwhile is left gone.
    async fn update_open_connection(
        &self,
        connection_id: &str,
        update: Update,
    ) -> Result<(), StoreError> {
        done_unless_failed(
            self.update(
                keys::connection_pk(connection_id),
                CONNECTION_SK.into(),
                update.exists(),
            )
            .await,
        )
    }

    /// Connections last known alive before `cutoff`.
    pub async fn connections_checked_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Connection>, StoreError> {
        self.sweep_index_before(GSI2, GSI2PK, GSI2SK, keys::connections_pk, cutoff)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Records that a connection was found open at `now`.
    pub async fn mark_connection_alive(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = Update::new().set(
            GSI2SK,
            s(keys::connection_check_sk(&sort_time(now), connection_id)),
        );
        self.update_open_connection(connection_id, update).await
    }

    /// One chat action's token from the connection's bucket (GCRA: the item keeps the
    /// theoretical arrival time `chat_tat`, in ms). Two single-item conditional
    /// updates and no read, so concurrent frames of one connection cannot both take
    /// the last token.
    pub async fn take_chat_token(
        &self,
        connection_id: &str,
        now_ms: i64,
    ) -> Result<ChatToken, StoreError> {
        let (pk, sk) = (
            keys::connection_pk(connection_id),
            CONNECTION_SK.to_string(),
        );
        let tolerance = (CHAT_TOKEN_BURST - 1) * CHAT_TOKEN_INTERVAL_MS;
        // An idle bucket: the arrival time restarts from now.
        let idle = Update::new()
            .exists()
            .require(
                "(attribute_not_exists({a0}) OR {a0} <= {0})",
                &["chat_tat"],
                vec![n(now_ms)],
            )
            .set("chat_tat", n(now_ms + CHAT_TOKEN_INTERVAL_MS));
        match self.update(pk.clone(), sk.clone(), idle).await {
            Ok(_) => return Ok(ChatToken::Granted),
            Err(StoreError::ConditionFailed) => {}
            Err(e) => return Err(e),
        }
        // A busy bucket: grant while the arrival time is within the burst tolerance.
        let busy = Update::new()
            .exists()
            .require("{a0} <= {0}", &["chat_tat"], vec![n(now_ms + tolerance)])
            .add("chat_tat", CHAT_TOKEN_INTERVAL_MS);
        match self.update(pk.clone(), sk.clone(), busy).await {
            Ok(_) => Ok(ChatToken::Granted),
            Err(StoreError::ConditionFailed) => {
                let tat = self
                    .get(pk, sk)
                    .await?
                    .and_then(|item| item.get("chat_tat").cloned())
                    .and_then(|v| match v {
                        AttributeValue::N(n) => n.parse::<i64>().ok(),
                        _ => None,
                    })
                    .unwrap_or(now_ms + tolerance + CHAT_TOKEN_INTERVAL_MS);
                Ok(ChatToken::Wait((tat - tolerance - now_ms).max(1)))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn connection(&self, connection_id: &str) -> Result<Option<Connection>, StoreError> {
        self.get_as(keys::connection_pk(connection_id), CONNECTION_SK.into())
            .await
    }

    /// Deletes a connection and returns it; `None` when it was already gone, so of
    /// two concurrent deletions (a `$disconnect` and a 410) exactly one gets it.
    pub async fn delete_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(
                keys::connection_pk(connection_id),
                CONNECTION_SK.into(),
            )))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        out.attributes.map(from_item).transpose()
    }

    /// Every connection watching a stream.
    pub async fn stream_connections(&self, stream_id: &str) -> Result<Vec<Connection>, StoreError> {
        self.stream_connection_items(stream_id, None).await
    }

    /// Every connection watching a stream, as much of each as delivery needs.
    pub async fn stream_recipients(&self, stream_id: &str) -> Result<Vec<Recipient>, StoreError> {
        self.stream_connection_items(stream_id, Some(Recipient::ATTRIBUTES))
            .await
    }

    async fn stream_connection_items<T: serde::de::DeserializeOwned>(
        &self,
        stream_id: &str,
        projection: Option<&'static [&'static str]>,
    ) -> Result<Vec<T>, StoreError> {
        let spec = QuerySpec {
            index: Some(GSI1),
            partition_attr: GSI1PK,
            partition_value: keys::stream_connections_pk(stream_id),
            sort_attr: GSI1SK,
            sort_prefix: None,
            sort_after: None,
            forward: true,
            limit: 1000,
            projection,
        };
        self.query_all(spec, usize::MAX)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}

/// A connection's item: its key, the stream's recipients index (GSI1), the sweep's
/// index of connections to check (GSI2) and its TTL.
pub(super) fn connection_item(connection: &Connection) -> Result<super::Item, StoreError> {
    let mut item = to_item(connection)?;
    item.insert(
        crate::table::PK.into(),
        s(keys::connection_pk(&connection.connection_id)),
    );
    item.insert(crate::table::SK.into(), s(CONNECTION_SK));
    item.insert(KIND.into(), s("connection"));
    item.insert(
        GSI1PK.into(),
        s(keys::stream_connections_pk(&connection.stream_id)),
    );
    item.insert(
        GSI1SK.into(),
        s(keys::connection_ref(&connection.connection_id)),
    );
    item.insert(TTL.into(), n(connection.ttl));
    item.insert(
        GSI2PK.into(),
        s(keys::connections_pk(keys::sweep_shard(
            &connection.connection_id,
        ))),
    );
    item.insert(
        GSI2SK.into(),
        s(keys::connection_check_sk(
            &sort_time(connection.connected_at),
            &connection.connection_id,
        )),
    );
    Ok(item)
}
