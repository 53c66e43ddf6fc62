//! A stream's video channel and the state of its ingest on the stream item, and the
//! channel's lookup item (`CHANNEL#arn`), which is how an event of the video service,
//! named by its channel's ARN, finds its class with one GetItem.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::{self, CHANNEL_SK, STREAM_SK};
use super::{QuerySpec, Store, StoreError, Update, from_item, keyed_item, n, s};
use crate::model::Ingest;
use crate::model::Recording;
use crate::model::Stream;
use crate::model::sort_time;
use crate::table::{GSI1, GSI1PK, GSI1SK};
use crate::video::{Channel, StreamKey};

/// The lookup item of a channel.
#[derive(Debug, Serialize, Deserialize)]
struct ChannelRef {
    stream_id: String,
    /// The channel itself, so a listing of retired channels names what to delete.
    #[serde(default)]
    channel_arn: Option<String>,
}

/// The video service's time of the last ingest event applied, in milliseconds: kept as
/// a number so that conditions compare it (time strings of varying precision do not
/// sort as times).
const INGEST_EVENT_MS: &str = "ingest_event_ms";

fn value<T: Serialize>(v: &T) -> Result<aws_sdk_dynamodb::types::AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Malformed(e.to_string()))
}

impl Store {
    /// Stores a new channel on a stream that has none, with its lookup item, in one
    /// transaction; [`StoreError::ConditionFailed`] if the stream already has one.
    pub async fn set_channel(
        &self,
        stream_id: &str,
        channel: &Channel,
        now: DateTime<Utc>,
    ) -> Result<Stream, StoreError> {
        let update = Update::new()
            .exists()
            .require("attribute_not_exists({a0})", &["channel_arn"], vec![])
            .set("channel_arn", s(&channel.arn))
            .set("ingest_url", s(&channel.ingest_url))
            .set("playback_url", s(&channel.playback_url))
            .set("stream_key", s(&channel.stream_key))
            .set("stream_key_arn", s(&channel.stream_key_arn))
            .set("updated_at", super::time(now));
        let lookup = keyed_item(
            &ChannelRef {
                stream_id: stream_id.to_string(),
                channel_arn: Some(channel.arn.clone()),
            },
            keys::channel_pk(&channel.arn),
            CHANNEL_SK.into(),
            "channel",
        )?;
        let actions = vec![
            update.into_transact(self.table(), keys::stream_pk(stream_id), STREAM_SK.into()),
            self.put_new_action(lookup)?,
        ];
        self.transact(actions).await.map_err(|e| {
            if e.failed_condition_at(0) {
                StoreError::ConditionFailed
            } else {
                e
            }
        })?;
        self.stream(stream_id)
            .await?
            .ok_or(StoreError::ConditionFailed)
    }

    /// The stream a channel belongs to.
    pub async fn stream_of_channel(&self, channel_arn: &str) -> Result<Option<String>, StoreError> {
        let found: Option<ChannelRef> = self
            .get_as(keys::channel_pk(channel_arn), CHANNEL_SK.into())
            .await?;
        Ok(found.map(|c| c.stream_id))
    }

    /// Marks a channel to be deleted after `delete_after` (its class is over); marking
    /// it again keeps the first time.
    pub async fn retire_channel(
        &self,
        channel_arn: &str,
        delete_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = Update::new()
            .exists()
            .require("attribute_not_exists({a0})", &[GSI1PK], vec![])
            .set(GSI1PK, s(keys::CHANNELS_RETIRED))
            .set(
                GSI1SK,
                s(keys::channel_retired_sk(
                    &sort_time(delete_after),
                    channel_arn,
                )),
            );
        super::done_unless_failed(
            self.update(keys::channel_pk(channel_arn), CHANNEL_SK.into(), update)
                .await,
        )
    }

    /// Channels whose class is over and whose time to be deleted came before `now`.
    pub async fn channels_to_delete(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let spec = QuerySpec {
            index: Some(GSI1),
            partition_attr: GSI1PK,
            partition_value: keys::CHANNELS_RETIRED.into(),
            sort_attr: GSI1SK,
            sort_prefix: None,
            sort_after: Some(sort_time(now)),
            forward: false,
            limit: 100,
            projection: None,
        };
        let items = self.query_all(spec, 1000).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| from_item::<ChannelRef>(item).ok()?.channel_arn)
            .collect())
    }

    /// Forgets a deleted channel: its late events then belong to no stream.
    pub async fn forget_channel(&self, channel_arn: &str) -> Result<(), StoreError> {
        self.delete_where(
            keys::channel_pk(channel_arn),
            CHANNEL_SK.into(),
            Update::new(),
        )
        .await
    }

    /// Replaces the stream's key with one the video service just issued, while the
    /// stream is open and still on that channel.
    pub async fn replace_stream_key(
        &self,
        stream_id: &str,
        channel_arn: &str,
        key: &StreamKey,
        now: DateTime<Utc>,
    ) -> Result<Stream, StoreError> {
        let update = Update::new()
            .while_open()
            .require_eq("channel_arn", s(channel_arn))
            .set("stream_key", s(&key.value))
            .set("stream_key_arn", s(&key.arn))
            .set("updated_at", super::time(now));
        match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
        {
            Ok(item) => from_item::<Stream>(item).map(Stream::with_peak),
            Err(e) => Err(self.finished_or(stream_id, e).await),
        }
    }

    /// Applies an ingest state from a video service event at `event_at`, unless a later
    /// event was applied already (events arrive late, twice and out of order); with
    /// `only_session`, only while that push is the stream's current one (the end of a
    /// push that another has replaced changes nothing). [`StoreError::ConditionFailed`]
    /// when the event is stale.
    pub async fn record_ingest(
        &self,
        stream_id: &str,
        ingest: &Ingest,
        event_at: DateTime<Utc>,
        only_session: Option<&str>,
    ) -> Result<Stream, StoreError> {
        let at = event_at.timestamp_millis();
        let mut update = Update::new()
            .exists()
            .require(
                "(attribute_not_exists({a0}) OR {a0} <= {0})",
                &[INGEST_EVENT_MS],
                vec![n(at)],
            )
            .set("ingest", value(ingest)?)
            .set(INGEST_EVENT_MS, n(at));
        if let Some(session) = only_session {
            update = update.require(
                "{a0}.{a1} = {0}",
                &["ingest", "session_id"],
                vec![s(session)],
            );
        }
        let item = self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await?;
        from_item::<Stream>(item).map(Stream::with_peak)
    }

    /// Replaces the stream's recording with `recording` if it is still `expected` (the
    /// recording read before: its `event_ms` and state), so two events or a deletion
    /// that race each other never write over one another;
    /// [`StoreError::ConditionFailed`] when it changed meanwhile (read again) or the
    /// stream is gone.
    pub async fn replace_recording(
        &self,
        stream_id: &str,
        recording: &Recording,
        expected: Option<&Recording>,
    ) -> Result<Stream, StoreError> {
        let mut update = Update::new().exists().set(RECORDING, value(recording)?);
        update = match expected {
            None => update.require("attribute_not_exists({a0})", &[RECORDING], vec![]),
            Some(before) => update.require(
                "{a0}.{a1} = {0} AND {a0}.{a2} = {1}",
                &[RECORDING, "event_ms", "state"],
                vec![n(before.event_ms), value(&before.state)?],
            ),
        };
        let item = self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await?;
        from_item::<Stream>(item).map(Stream::with_peak)
    }
}

/// The stream item's attribute that holds its [`Recording`].
const RECORDING: &str = "recording";
