//! WebSocket connections: recorded on `$connect`, listed per stream by the
//! broadcaster, deleted on `$disconnect`, on a 410 Gone, or by TTL.

use super::keys::{self, CONNECTION_SK};
use super::{QuerySpec, Store, StoreError, from_item, n, s, to_item};
use crate::model::Connection;
use crate::table::{GSI1, GSI1PK, GSI1SK, KIND, TTL};

impl Store {
    pub async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
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
        self.put_new(item).await
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
        let spec = QuerySpec {
            index: Some(GSI1),
            partition_attr: GSI1PK,
            partition_value: keys::stream_connections_pk(stream_id),
            sort_attr: GSI1SK,
            sort_prefix: None,
            sort_after: None,
            forward: true,
            limit: 1000,
        };
        self.query_all(spec, usize::MAX)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}
