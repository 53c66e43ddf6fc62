//! WebSocket connections: who may open one, and presence while it is open.

use crate::auth::{Authenticator, Identity};
use crate::error::ApiError;
use crate::model::connection::CONNECTION_TTL_SECS;
use crate::model::{Connection, Session, StreamStatus, now};
use crate::store::participants::FirstConnection;
use crate::store::{Store, StoreError};

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
    let privileged = access::is_owner(&who, &stream) || who.is_admin();
    // Whether they may stay if the stream turns private is asked of a public stream's
    // viewers only when it does (`revoke_outsiders`): a class connecting at once saves
    // an enrollment read each.
    let private_ok = if stream.is_public {
        privileged
    } else if access::may_view_private(store, &who, &stream).await? {
        true
    } else {
        return Err(access::private_stream());
    };
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
        is_staff: privileged,
        connected_at,
        private_ok,
        ttl: connected_at.timestamp() + CONNECTION_TTL_SECS,
    };
    let already_open =
        || ApiError::conflict("connection_exists", "this connection is already open");
    let live = stream.status == StreamStatus::Live;
    let session = Session::Connection(connection_id.to_string());
    // Most sockets of a live class are their user's first session in it: the
    // connection and the participant are written together.
    if live && !access::is_owner(&who, &stream) {
        let participant = presence::first_participant(&who, &stream, &session);
        match store.open_first_connection(&connection, &participant).await {
            Ok(FirstConnection::Opened) => return Ok(connection),
            Ok(FirstConnection::ConnectionExists) => return Err(already_open()),
            // Back before, busy, or the stream stopped meanwhile: one step at a time.
            Ok(FirstConnection::ParticipantExists)
            | Err(StoreError::Busy(_) | StoreError::StreamFinished) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store
        .put_connection(&connection)
        .await
        .map_err(|e| match e {
            StoreError::ConditionFailed => already_open(),
            other => other.into(),
        })?;
    if live && let Err(err) = presence::enter_as_before(store, &who, &stream, &session).await {
        // Leave no connection behind that is not counted: refuse it whole.
        store.delete_connection(connection_id).await?;
        return Err(err);
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

/// The stream turned private: its connections opened while it was public are marked
/// as allowed when their users may watch it private (enrolled). Run before the
/// batch that made it private is delivered, so they miss none of it.
pub async fn admit_enrolled(store: &Store, stream_id: &str) -> Result<(), ApiError> {
    if let Some(stream) = store.stream(stream_id).await?.filter(|s| !s.is_public) {
        outsiders_after_admitting(store, &stream).await?;
    }
    Ok(())
}

/// A private stream's connections not allowed to watch it: those not yet allowed are
/// asked their enrollment (they connected while it was public), and the enrolled ones
/// are allowed on the way.
async fn outsiders_after_admitting(
    store: &Store,
    stream: &crate::model::Stream,
) -> Result<Vec<Connection>, ApiError> {
    let mut outsiders = Vec::new();
    for connection in store.stream_connections(&stream.id).await? {
        if !admitted(store, &connection, stream).await? {
            outsiders.push(connection);
        }
    }
    Ok(outsiders)
}

/// Whether `connection` may watch the private `stream`; one that may and was not yet
/// marked so (its user connected while the stream was public) is marked now.
async fn admitted(
    store: &Store,
    connection: &Connection,
    stream: &crate::model::Stream,
) -> Result<bool, ApiError> {
    if connection.private_ok {
        return Ok(true);
    }
    if !access::may_view_private(store, &connection.identity(), stream).await? {
        return Ok(false);
    }
    store.allow_private(&connection.connection_id).await?;
    Ok(true)
}

/// The stream turned private: its connections whose users may not watch a private
/// stream are closed, and the HTTP presence of such users ends. Returns how many
/// users lost access. A connection opened meanwhile by an enrolled user is admitted
/// as [`admit_enrolled`] would.
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
    for connection in outsiders_after_admitting(store, &stream).await? {
        close(store, sockets, &connection.connection_id).await?;
        revoked.insert(connection.user_id);
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

/// Connections of a private stream that are not allowed to watch it after its turning
/// private was handled: opened while it was public, their write landed after
/// [`revoke_outsiders`] had run. The enrolled ones are allowed and the others closed,
/// as they would have been then. Returns the ids of those allowed.
pub async fn admit_latecomers(
    store: &Store,
    sockets: &crate::realtime::Connections,
    stream: &crate::model::Stream,
    connection_ids: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut allowed = Vec::new();
    for connection_id in connection_ids {
        let Some(connection) = store.connection(connection_id).await? else {
            continue;
        };
        if admitted(store, &connection, stream).await? {
            allowed.push(connection_id.clone());
        } else {
            close(store, sockets, connection_id).await?;
        }
    }
    Ok(allowed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::testing::{TestEnv, teacher_stream, token};

    #[tokio::test]
    async fn a_first_socket_in_a_live_public_class_takes_three_store_round_trips() {
        let env = TestEnv::start().await;
        let stream = teacher_stream(env.store(), true, true).await;
        let (store, operations) = env.counting_store();
        let student = token("student-1", Role::Student);

        connect(
            &store,
            &env.state.auth,
            "c1",
            Some(&student),
            Some(&stream.id),
        )
        .await
        .unwrap();
        assert_eq!(
            operations.total(),
            3,
            "the stream, the connection with the participant, the count"
        );
        assert_eq!(operations.count("GetItem"), 1);
        assert_eq!(operations.count("TransactWriteItems"), 1);
        assert_eq!(operations.count("UpdateItem"), 1);
        let connection = store.connection("c1").await.unwrap().unwrap();
        assert!(
            !connection.private_ok,
            "asked when the stream turns private"
        );
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!((stream.viewer_count, stream.unique_viewers), (1, 1));

        // A second tab of the same user: one step at a time, still counted once.
        connect(
            &store,
            &env.state.auth,
            "c2",
            Some(&student),
            Some(&stream.id),
        )
        .await
        .unwrap();
        let stream = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!((stream.viewer_count, stream.unique_viewers), (1, 1));
        let participant = store
            .participant(&stream.id, "student-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(participant.sessions.len(), 2);
        let again = connect(
            &store,
            &env.state.auth,
            "c2",
            Some(&student),
            Some(&stream.id),
        )
        .await
        .unwrap_err();
        assert_eq!(again.code(), "connection_exists");
    }
}
