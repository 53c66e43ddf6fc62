//! Presence: who is watching a stream, from HTTP joins and WebSocket connections.
//!
//! A user counts once however many tabs they have open: the first session makes
//! them a viewer, the last one to end stops it. Joining and leaving are idempotent.

use std::time::Duration;

use futures::StreamExt;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::model::{Participant, Session, Stream, now};
use crate::store::{Store, StoreError};

use super::access::is_owner;

/// Attempts before concurrent changes to the same participant are reported as busy.
const MAX_ATTEMPTS: u32 = 12;

async fn back_off(attempt: u32) {
    let jitter: u64 = rand::random::<u64>() % 5;
    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 3 + jitter)).await;
}

fn busy() -> ApiError {
    ApiError::Unavailable("presence update kept conflicting".into())
}

fn require_live(stream: &Stream) -> Result<(), ApiError> {
    super::access::require_live(stream.status, "a stream can be joined")
}

/// Starts (or adds) a session of `who` in a stream they may view. Returns the
/// participant, or `None` for the stream's instructor, who is never counted as a viewer.
pub async fn enter(
    store: &Store,
    who: &Identity,
    stream: &Stream,
    session: &Session,
) -> Result<Option<Participant>, ApiError> {
    if is_owner(who, stream) {
        return Ok(None);
    }
    require_live(stream)?;
    // A socket is most often its user's first session in the class (a class connecting
    // at once): the first-session write alone, without reading the participant first.
    // HTTP joins are not tried this way: they come back every 20 s as heartbeats.
    if matches!(session, Session::Connection(_)) {
        match store
            .enter_first(&first_participant(who, stream, session), session)
            .await
        {
            Ok(participant) => return Ok(Some(participant)),
            // They were here before: the usual path below.
            Err(StoreError::ConditionFailed | StoreError::Busy(_)) => {}
            Err(StoreError::StreamFinished) => {
                let latest = store
                    .stream(&stream.id)
                    .await?
                    .ok_or(ApiError::NotFound("stream"))?;
                require_live(&latest)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    enter_as_before(store, who, stream, session).await
}

/// [`enter`] for a user who has (most likely) taken part in the stream before: reads
/// their participant and adds the session to it, or starts watching again.
pub(super) async fn enter_as_before(
    store: &Store,
    who: &Identity,
    stream: &Stream,
    session: &Session,
) -> Result<Option<Participant>, ApiError> {
    if is_owner(who, stream) {
        return Ok(None);
    }
    let session_id = session.id();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        let result = match store.participant(&stream.id, &who.user_id).await? {
            // Joining again over HTTP is the heartbeat that keeps HTTP presence.
            Some(p) if p.is_watching && p.sessions.contains(&session_id) => {
                if *session != Session::Http {
                    return Ok(Some(p));
                }
                match store.http_heartbeat(&stream.id, &who.user_id, now()).await {
                    Ok(p) => return Ok(Some(p)),
                    Err(e) => Err(e),
                }
            }
            Some(p) if p.is_watching => {
                match store
                    .add_session(&stream.id, &who.user_id, session, now())
                    .await
                {
                    Ok(p) => return Ok(Some(p)),
                    Err(e) => Err(e),
                }
            }
            Some(_) => {
                store
                    .enter_again(&stream.id, &who.user_id, session, now())
                    .await
            }
            None => {
                store
                    .enter_first(&first_participant(who, stream, session), session)
                    .await
            }
        };
        match result {
            Ok(participant) => return Ok(Some(participant)),
            Err(StoreError::StreamFinished) => {
                let latest = store
                    .stream(&stream.id)
                    .await?
                    .ok_or(ApiError::NotFound("stream"))?;
                require_live(&latest)?;
                continue;
            }
            // The participant changed under us (another tab, a concurrent leave): re-read.
            Err(StoreError::ConditionFailed | StoreError::Busy(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(busy())
}

/// A user's participation as their first session in the class starts it.
pub(super) fn first_participant(who: &Identity, stream: &Stream, session: &Session) -> Participant {
    let at = now();
    Participant {
        stream_id: stream.id.clone(),
        user_id: who.user_id.clone(),
        display_name: who.display_name.clone(),
        role: who.role,
        joined_at: at,
        left_at: None,
        is_watching: true,
        watching_since: Some(at),
        duration_watched: 0,
        is_moderator: false,
        can_chat: true,
        can_ask_questions: true,
        last_chat_at: None,
        http_seen_at: (*session == Session::Http).then_some(at),
        sessions: vec![session.id()],
    }
}

/// Ends one session of a user; when it was their last (or their last WebSocket
/// connection), they stop watching. Ending a session that does not exist changes
/// nothing. Returns the participant afterwards.
pub async fn exit(
    store: &Store,
    stream_id: &str,
    user_id: &str,
    session: &Session,
) -> Result<Option<Participant>, ApiError> {
    let session_id = session.id();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        let Some(p) = store.participant(stream_id, user_id).await? else {
            return Ok(None);
        };
        if !p.sessions.contains(&session_id) {
            return Ok(Some(p));
        }
        // The last WebSocket connection ends presence even if an HTTP join is still
        // open: a closed tab never calls leave, and the socket is what proves watching.
        let http = Session::Http.id();
        let others_keep_watching = p.sessions.iter().any(|s| {
            *s != session_id && !(matches!(session, Session::Connection(_)) && *s == http)
        });
        let result = if others_keep_watching {
            store
                .remove_session(stream_id, user_id, session)
                .await
                .map(|_| ())
        } else {
            let since = p.watching_since.unwrap_or(p.joined_at);
            store
                .exit_last(stream_id, user_id, &p.sessions, since, now())
                .await
        };
        match result {
            Ok(()) => return Ok(store.participant(stream_id, user_id).await?),
            // The participant changed under us (another tab, a concurrent join): re-read.
            Err(StoreError::ConditionFailed | StoreError::Busy(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(busy())
}

/// Ends every watching period of a stream that just ended, at its `ended_at`. Part of
/// the stop: run before the final statistics are written, so they include all of it.
pub async fn end_all(store: &Store, stream: &Stream) -> Result<(), ApiError> {
    let Some(ended_at) = stream.ended_at else {
        return Ok(());
    };
    let watching: Vec<Participant> = store
        .all_participants(&stream.id)
        .await?
        .into_iter()
        .filter(|p| p.is_watching)
        .collect();
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(watching)
        .map(|p| async move {
            let since = p.watching_since.unwrap_or(p.joined_at);
            match store
                .close_at_end(&stream.id, &p.user_id, since, ended_at)
                .await
            {
                // A disconnect closed it first.
                Err(StoreError::ConditionFailed) => Ok(()),
                other => other,
            }
        })
        .buffer_unordered(END_ALL_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(())
}

/// Periods closed at once when a stream stops.
const END_ALL_CONCURRENCY: usize = 16;

/// HTTP presence lapses when its last join (heartbeat) is older than this. Clients
/// without a WebSocket join again every [`HTTP_HEARTBEAT_SECS`].
pub const HTTP_PRESENCE_TIMEOUT_SECS: i64 = 60;
/// How often an HTTP-only client should join again.
pub const HTTP_HEARTBEAT_SECS: i64 = 20;

/// Ends the HTTP presence of everyone whose heartbeat is older than `cutoff`; returns
/// how many were ended.
pub async fn end_lapsed_http(
    store: &Store,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ApiError> {
    let lapsed = store.lapsed_http_presences(cutoff).await?;
    for presence in &lapsed {
        exit(
            store,
            &presence.stream_id,
            &presence.user_id,
            &Session::Http,
        )
        .await?;
    }
    Ok(lapsed.len())
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;

    use super::*;
    use crate::auth::Role;
    use crate::testing::{TEACHER, TestEnv, identity, teacher_stream};

    async fn live_stream(store: &Store) -> Stream {
        teacher_stream(store, true, true).await
    }

    fn counters(stream: &Stream) -> (i64, i64, i64) {
        (
            stream.viewer_count,
            stream.max_viewers,
            stream.unique_viewers,
        )
    }

    #[tokio::test]
    async fn a_class_joining_and_leaving_at_once_is_counted_exactly_without_a_transaction() {
        let env = TestEnv::start().await;
        let (store, operations) = env.counting_store();
        let stream = live_stream(&store).await;
        let students: Vec<_> = (0..200)
            .map(|i| identity(&format!("student-{i}"), Role::Student))
            .collect();
        // Every student joins over HTTP and with a socket, all at the same moment.
        let joins = students.iter().flat_map(|who| {
            [
                Session::Http,
                Session::Connection(format!("conn-{}", who.user_id)),
            ]
            .map(|session| {
                let (store, stream) = (&store, &stream);
                async move { enter(store, who, stream, &session).await }
            })
        });
        let joined = join_all(joins).await;
        assert!(joined.iter().all(Result::is_ok), "{joined:?}");
        let now_watching = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(counters(&now_watching), (200, 200, 200));

        // Half of them close the laptop: both of their sessions end at once.
        let leaves = students.iter().take(100).flat_map(|who| {
            [
                Session::Http,
                Session::Connection(format!("conn-{}", who.user_id)),
            ]
            .map(|session| {
                let (store, stream) = (&store, &stream);
                async move { exit(store, &stream.id, &who.user_id, &session).await }
            })
        });
        let left = join_all(leaves).await;
        assert!(left.iter().all(Result::is_ok), "{left:?}");
        let after = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(counters(&after), (100, 200, 200));
        let participants = store.all_participants(&stream.id).await.unwrap();
        assert_eq!(participants.iter().filter(|p| p.is_watching).count(), 100);
        assert_eq!(operations.count("TransactWriteItems"), 0);
    }

    #[tokio::test]
    async fn the_peak_is_the_highest_count_reached_whatever_came_between() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = live_stream(store).await;
        let who: Vec<_> = (0..5)
            .map(|i| identity(&format!("student-{i}"), Role::Student))
            .collect();
        let http = Session::Http;
        let counted = || async { counters(&store.stream(&stream.id).await.unwrap().unwrap()) };
        for w in &who[..3] {
            enter(store, w, &stream, &http).await.unwrap();
        }
        for w in &who[..2] {
            exit(store, &stream.id, &w.user_id, &http).await.unwrap();
        }
        assert_eq!(counted().await, (1, 3, 3));
        // Below the peak: a newcomer (tried at the peak first) and a returning viewer.
        enter(store, &who[3], &stream, &http).await.unwrap();
        enter(store, &who[0], &stream, &http).await.unwrap();
        assert_eq!(counted().await, (3, 3, 4));
        // Past it.
        enter(store, &who[1], &stream, &http).await.unwrap();
        enter(store, &who[4], &stream, &http).await.unwrap();
        assert_eq!(counted().await, (5, 5, 5));
    }

    #[tokio::test]
    async fn a_leave_never_takes_a_count_that_lost_a_join_below_zero() {
        let env = TestEnv::start().await;
        let store = env.store();
        let stream = live_stream(store).await;
        let student = identity("student", Role::Student);
        enter(store, &student, &stream, &Session::Http)
            .await
            .unwrap();
        // What a join killed between its two writes leaves: watching, not counted.
        let lost = crate::store::Update::new().set("viewer_count", crate::store::n(0));
        store
            .update(
                crate::store::keys::stream_pk(&stream.id),
                crate::store::keys::STREAM_SK.into(),
                lost,
            )
            .await
            .unwrap();
        exit(store, &stream.id, "student", &Session::Http)
            .await
            .unwrap();
        let after = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(after.viewer_count, 0);
        let participant = store.participant(&stream.id, "student").await.unwrap();
        assert!(!participant.unwrap().is_watching);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joins_racing_the_stop_are_counted_before_it_or_refused() {
        let env = TestEnv::start().await;
        let store = env.store().clone();
        let stream = live_stream(&store).await;
        let students: Vec<_> = (0..300)
            .map(|i| identity(&format!("student-{i}"), Role::Student))
            .collect();
        let joins = join_all(students.iter().cloned().map(|who| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move { enter(&store, &who, &stream, &Session::Http).await })
        }));
        let teacher = identity(TEACHER, Role::Teacher);
        // The stop comes once the first joins are counted, while the rest are in flight.
        let stop = async {
            while store
                .stream(&stream.id)
                .await
                .unwrap()
                .unwrap()
                .unique_viewers
                < 100
            {
                tokio::task::yield_now().await;
            }
            crate::service::streams::stop(&store, None, &teacher, &stream.id)
                .await
                .unwrap()
        };
        let (joined, ended) = tokio::join!(joins, stop);
        let joined: Vec<_> = joined.into_iter().map(Result::unwrap).collect();
        let refused = joined
            .iter()
            .filter(|r| matches!(r, Err(ApiError::Conflict { .. })))
            .count();
        assert_eq!(
            joined.iter().filter(|r| r.is_ok()).count() + refused,
            students.len(),
            "{joined:?}"
        );
        let last = store.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(last.viewer_count, 0);
        assert_eq!(last.max_viewers, ended.max_viewers);
        assert_eq!(last.unique_viewers, ended.unique_viewers);
        // Nobody left before the stop: the peak is everyone it counted.
        assert_eq!(last.max_viewers, last.unique_viewers);
        // Every participant left is one the stream counted, and none still watches.
        let participants = store.all_participants(&stream.id).await.unwrap();
        assert_eq!(participants.len() as i64, last.unique_viewers);
        assert!(participants.iter().all(|p| !p.is_watching));
    }
}
