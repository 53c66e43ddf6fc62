//! WebSocket connections: who may open one, and presence while it is open.

use crate::auth::{Authenticator, Identity};
use crate::error::ApiError;
use crate::model::connection::CONNECTION_TTL_SECS;
use crate::model::{Connection, Session, StreamStatus, now};
use crate::store::Store;

use super::{access, presence};

/// `$connect`: checks the token and the right to watch, records the connection and,
/// when the stream is live, counts the user as watching. A refused connection stores
/// nothing.
pub async fn connect(
    store: &Store,
    auth: &Authenticator,
    connection_id: &str,
    token: Option<&str>,
    stream_id: Option<&str>,
) -> Result<Connection, ApiError> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("pass the token as ?token=<JWT>".into()))?;
    let who = auth.authenticate(token).await?;
    let stream_id = stream_id.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("missing_stream_id", "pass the stream as ?stream_id=<id>")
    })?;
    let stream = access::load(store, stream_id).await?;
    // One enrollment read answers both whether they may watch now and whether they may
    // stay if the stream turns private.
    let private_ok = access::may_view_private(store, &who, &stream).await?;
    if !stream.is_public && !private_ok {
        return Err(access::private_stream());
    }
    if matches!(stream.status, StreamStatus::Ended | StreamStatus::Cancelled) {
        return Err(ApiError::conflict(
            "stream_finished",
            format!("the stream is {}", stream.status.as_str()),
        ));
    }
    let connected_at = now();
    let connection = Connection {
        connection_id: connection_id.to_string(),
        stream_id: stream.id.clone(),
        user_id: who.user_id.clone(),
        role: who.role,
        display_name: who.display_name.clone(),
        is_staff: access::is_owner(&who, &stream) || who.is_admin(),
        connected_at,
        private_ok,
        ttl: connected_at.timestamp() + CONNECTION_TTL_SECS,
    };
    store
        .put_connection(&connection)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::ConditionFailed => {
                ApiError::conflict("connection_exists", "this connection is already open")
            }
            other => other.into(),
        })?;
    if stream.status == StreamStatus::Live {
        let session = Session::Connection(connection_id.to_string());
        if let Err(err) = presence::enter(store, &who, &stream, &session).await {
            // Leave no connection behind that is not counted: refuse it whole.
            store.delete_connection(connection_id).await?;
            return Err(err);
        }
    }
    Ok(connection)
}

/// `$disconnect` (or a 410 Gone, or the sweeper): ends the connection's presence,
/// then deletes it. In that order, so a crash in between leaves the record for the
/// sweeper or TTL to finish, never a viewer counted without a connection. Returns the
/// connection if this call was the one that removed it.
pub async fn disconnect(
    store: &Store,
    connection_id: &str,
) -> Result<Option<Connection>, ApiError> {
    let Some(connection) = store.connection(connection_id).await? else {
        return Ok(None);
    };
    end_presence(store, &connection).await?;
    Ok(store.delete_connection(connection_id).await?)
}

/// Closes a connection from the server side (`@connections` DELETE) and finishes
/// what its `$disconnect` would do, so the effect does not wait for that event.
pub async fn close(
    store: &Store,
    sockets: &crate::realtime::Connections,
    connection_id: &str,
) -> Result<(), ApiError> {
    match sockets.close(connection_id).await {
        Ok(()) | Err(crate::realtime::PostError::Gone) => {}
        Err(err) => {
            tracing::warn!(connection = connection_id, error = %err, "closing a socket failed")
        }
    }
    disconnect(store, connection_id).await?;
    Ok(())
}

/// A connection is checked again when it was last known alive this long ago.
pub const CONNECTION_CHECK_AFTER_SECS: i64 = 5 * 60;

/// Finds connections that died without a `$disconnect` (last known alive before
/// `cutoff`, and `GetConnection` answers 410) and disconnects them; the others are
/// marked alive. Returns how many were gone.
pub async fn sweep(
    store: &Store,
    sockets: &crate::realtime::Connections,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ApiError> {
    let mut gone = 0;
    for connection in store.connections_checked_before(cutoff).await? {
        match sockets.check(&connection.connection_id).await {
            Ok(()) => {
                store
                    .mark_connection_alive(&connection.connection_id, now())
                    .await?;
            }
            Err(crate::realtime::PostError::Gone) => {
                disconnect(store, &connection.connection_id).await?;
                gone += 1;
            }
            Err(err) => {
                tracing::warn!(connection = %connection.connection_id, error = %err, "connection check failed");
            }
        }
    }
    Ok(gone)
}

/// The stream turned private: its connections whose users may not watch a private
/// stream are closed, and the HTTP presence of such users ends. Returns how many
/// users lost access.
pub async fn revoke_outsiders(
    store: &Store,
    sockets: &crate::realtime::Connections,
    stream_id: &str,
) -> Result<usize, ApiError> {
    let Some(stream) = store.stream(stream_id).await? else {
        return Ok(0);
    };
    if stream.is_public {
        return Ok(0);
    }
    let mut revoked = std::collections::HashSet::new();
    for connection in store.stream_connections(stream_id).await? {
        if !connection.private_ok {
            close(store, sockets, &connection.connection_id).await?;
            revoked.insert(connection.user_id);
        }
    }
    for participant in store.all_participants(stream_id).await? {
        if !participant.is_watching || !participant.sessions.contains(&Session::Http.id()) {
            continue;
        }
        let who = Identity {
            user_id: participant.user_id.clone(),
            role: participant.role,
            display_name: participant.display_name.clone(),
        };
        if !access::may_view_private(store, &who, &stream).await? {
            presence::exit(store, stream_id, &participant.user_id, &Session::Http).await?;
            revoked.insert(participant.user_id);
        }
    }
    Ok(revoked.len())
}

/// Ends the presence a connection held (also used when TTL removed the record).
pub async fn end_presence(store: &Store, connection: &Connection) -> Result<(), ApiError> {
    let session = Session::Connection(connection.connection_id.clone());
    presence::exit(store, &connection.stream_id, &connection.user_id, &session).await?;
    Ok(())
}

/// Counts every open connection of a stream that just went live as watching (users
/// who connected while it was still scheduled).
pub async fn enter_waiting_connections(store: &Store, stream_id: &str) -> Result<(), ApiError> {
    let Some(stream) = store.stream(stream_id).await? else {
        return Ok(());
    };
    if stream.status != StreamStatus::Live {
        return Ok(());
    }
    for connection in store.stream_connections(stream_id).await? {
        let who: Identity = connection.identity();
        let session = Session::Connection(connection.connection_id.clone());
        presence::enter(store, &who, &stream, &session).await?;
        // A `$disconnect` may have deleted the record meanwhile; it exits after its
        // delete, so either it undid this enter or this check sees the record gone.
        if store.connection(&connection.connection_id).await?.is_none() {
            presence::exit(store, stream_id, &connection.user_id, &session).await?;
        }
    }
    Ok(())
}
