//! Stream items: creation, reads, detail updates, state transitions and listings.

use chrono::{DateTime, Utc};

use super::keys::{self, STREAM_SK};
use super::{
    Cursor, Item, QuerySpec, Store, StoreError, Update, done_unless_failed, from_item, n, s, time,
    to_item,
};
use crate::model::stream::StreamChanges;
use crate::model::{Stream, StreamStatus, sort_time};
use crate::table::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, KIND};

/// The GSI1 entry of a stream in `status`, if that status is listed.
fn status_index(stream: &Stream) -> Option<(String, String)> {
    let at = match stream.status {
        StreamStatus::Scheduled => stream.scheduled_at.unwrap_or(stream.created_at),
        StreamStatus::Live => stream.started_at.unwrap_or(stream.updated_at),
        StreamStatus::Ended | StreamStatus::Cancelled => return None,
    };
    Some((
        keys::status_pk(stream.status),
        keys::status_sk(&sort_time(at), &stream.id),
    ))
}

pub(crate) fn stream_from(item: Item) -> Result<Stream, StoreError> {
    from_item::<Stream>(item).map(Stream::with_peak)
}

/// The full item of a stream, keys included.
pub fn stream_item(stream: &Stream) -> Result<Item, StoreError> {
    let mut item = to_item(stream)?;
    item.insert(crate::table::PK.into(), s(keys::stream_pk(&stream.id)));
    item.insert(crate::table::SK.into(), s(STREAM_SK));
    item.insert(KIND.into(), s("stream"));
    item.insert(GSI2PK.into(), s(keys::user_pk(&stream.instructor_id)));
    item.insert(GSI2SK.into(), s(keys::stream_ref(&stream.id)));
    if let Some((pk, sk)) = status_index(stream) {
        item.insert(GSI1PK.into(), s(pk));
        item.insert(GSI1SK.into(), s(sk));
    }
    Ok(item)
}

/// The viewer count a stop ended, kept for the peak (see [`Store::stop_stream`]).
const VIEWERS_AT_END: &str = "viewer_count_at_end";

fn status(value: StreamStatus) -> aws_sdk_dynamodb::types::AttributeValue {
    s(value.as_str())
}

impl Store {
    /// Stores a new stream; fails if the id is taken.
    pub async fn create_stream(&self, stream: &Stream) -> Result<(), StoreError> {
        self.put_new(stream_item(stream)?).await
    }

    /// A stream; `max_viewers` is the true peak (see [`super::participants`]).
    pub async fn stream(&self, stream_id: &str) -> Result<Option<Stream>, StoreError> {
        let stream: Option<Stream> = self
            .get_as(keys::stream_pk(stream_id), STREAM_SK.into())
            .await?;
        Ok(stream.map(Stream::with_peak))
    }

    /// Applies validated detail changes, only while the stream is scheduled or live
    /// (and a new schedule only while it is still scheduled).
    pub async fn update_stream_details(
        &self,
        stream_id: &str,
        changes: &StreamChanges,
        now: DateTime<Utc>,
    ) -> Result<Stream, StoreError> {
        let mut update = Update::new().exists().set("updated_at", time(now));
        if let Some(title) = &changes.title {
            update = update.set("title", s(title));
        }
        if let Some(description) = &changes.description {
            update = update.set("description", s(description));
        }
        if let Some(quality) = &changes.quality_settings {
            update = update.set(
                "quality_settings",
                serde_dynamo::to_attribute_value(quality)
                    .map_err(|e| StoreError::Malformed(e.to_string()))?,
            );
        }
        if let Some(is_public) = changes.is_public {
            update = update.set(
                "is_public",
                aws_sdk_dynamodb::types::AttributeValue::Bool(is_public),
            );
        }
        if let Some(is_recording) = changes.is_recording {
            update = update.set(
                "is_recording",
                aws_sdk_dynamodb::types::AttributeValue::Bool(is_recording),
            );
        }
        if let Some(at) = changes.scheduled_at {
            update = update
                .set("scheduled_at", time(at))
                .set(GSI1SK, s(keys::status_sk(&sort_time(at), stream_id)))
                .require_eq("status", status(StreamStatus::Scheduled));
        } else {
            update = update.require_in(
                "status",
                vec![status(StreamStatus::Scheduled), status(StreamStatus::Live)],
            );
        }
        if changes.is_public.is_some() || changes.is_recording.is_some() {
            return self.update_chat_rules(stream_id, update).await;
        }
        let item = self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await?;
        stream_from(item)
    }

    /// scheduled -> live; exactly one of concurrent calls succeeds. `from_encoder`: the
    /// push of the stream's encoder started it (so the push's end ends it too).
    pub async fn start_stream(
        &self,
        stream_id: &str,
        now: DateTime<Utc>,
        from_encoder: bool,
    ) -> Result<Stream, StoreError> {
        let update = Update::new()
            .require_eq("status", status(StreamStatus::Scheduled))
            .set("status", status(StreamStatus::Live))
            .set(
                "live_from_encoder",
                aws_sdk_dynamodb::types::AttributeValue::Bool(from_encoder),
            )
            .set("started_at", time(now))
            .set("updated_at", time(now))
            .set(GSI1PK, s(keys::status_pk(StreamStatus::Live)))
            .set(GSI1SK, s(keys::status_sk(&sort_time(now), stream_id)));
        let stream: Stream = from_item(
            self.update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
                .await?,
        )?;
        // The stream is live either way: a chat left closed here (a cancel racing the
        // start holds the stream closed a moment) opens at its first message.
        if let Err(err) = self.open_chat(&stream).await {
            tracing::warn!(stream = stream_id, error = %err, "chat not opened at the start");
        }
        Ok(stream)
    }

    /// live -> ended, recording the end time and the duration in seconds; nobody is
    /// watching any more, so `viewer_count` becomes 0. One conditional write, which no
    /// join can invalidate: it keeps the count it ends as `viewer_count_at_end`, and a
    /// second write raises the peak to it (nothing else moves the counters of an
    /// ended stream, so that write races nothing).
    ///
    /// With `abandoned_push`, only while the ingest is still reconnecting from that
    /// push (a push that came back meanwhile keeps the class going).
    pub async fn stop_stream(
        &self,
        stream_id: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        abandoned_push: Option<&str>,
    ) -> Result<Stream, StoreError> {
        let duration = (now - started_at).num_seconds().max(0);
        tokio::try_join!(self.close(stream_id, now), self.close_chat(stream_id))?;
        let mut update = Update::new().require_eq("status", status(StreamStatus::Live));
        if let Some(session) = abandoned_push {
            update = update
                .require(
                    "{a0}.{a1} = {0}",
                    &["ingest", "state"],
                    vec![s(crate::model::IngestState::Reconnecting.as_str())],
                )
                .require(
                    "{a0}.{a1} = {0}",
                    &["ingest", "session_id"],
                    vec![s(session)],
                );
        }
        let update = update
            .copy(VIEWERS_AT_END, "viewer_count")
            .set("viewer_count", n(0))
            .set("status", status(StreamStatus::Ended))
            .set("ended_at", time(now))
            .set("duration", n(duration))
            .set("updated_at", time(now))
            .set(GSI1PK, s(keys::UNSETTLED_PK))
            .set(GSI1SK, s(keys::status_sk(&sort_time(now), stream_id)));
        let ended = match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
        {
            Ok(item) => stream_from(item)?,
            Err(err) => {
                // Still live (the push came back): its class stays open.
                if let Ok(Some(stream)) = self.stream(stream_id).await
                    && !stream.status.is_finished()
                {
                    self.reopen(stream_id).await?;
                }
                return Err(err);
            }
        };
        let peak = Update::new()
            .require(
                "attribute_not_exists({a0}) OR {a0} < {a1}",
                &["max_viewers", VIEWERS_AT_END],
                vec![],
            )
            .copy("max_viewers", VIEWERS_AT_END);
        match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), peak)
            .await
        {
            Ok(item) => stream_from(item),
            Err(StoreError::ConditionFailed) => Ok(ended),
            Err(e) => Err(e),
        }
    }

    /// Ended streams still to be settled that ended before `cutoff`, oldest first.
    pub async fn unsettled_streams(
        &self,
        cutoff: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<Stream>, StoreError> {
        let spec = QuerySpec {
            index: Some(GSI1),
            partition_attr: GSI1PK,
            partition_value: keys::UNSETTLED_PK.into(),
            sort_attr: GSI1SK,
            sort_prefix: None,
            sort_after: Some(sort_time(cutoff)),
            forward: false,
            limit,
            projection: None,
        };
        let (items, _) = self.query_page(spec, None).await?;
        items.into_iter().map(stream_from).collect()
    }

    /// Takes a settled stream out of the index of streams to settle.
    pub async fn mark_settled(&self, stream_id: &str) -> Result<(), StoreError> {
        let update = Update::new()
            .require_eq("status", status(StreamStatus::Ended))
            .remove(GSI1PK)
            .remove(GSI1SK);
        done_unless_failed(
            self.update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
                .await,
        )
    }

    /// Removes one attribute of a stream (a pin, a highlight) while the stream is
    /// open; with `only`, only while it still has that value, so a newer pin or
    /// highlight is never cleared by mistake (that case is not an error).
    pub(crate) async fn clear_stream_field(
        &self,
        stream_id: &str,
        attr: &str,
        only: Option<aws_sdk_dynamodb::types::AttributeValue>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut update = Update::new()
            .exists()
            .while_open()
            .remove(attr)
            .set("updated_at", time(now));
        if let Some(value) = only {
            update = update.require_eq(attr, value);
        }
        match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.finished_or(stream_id, e).await {
                StoreError::ConditionFailed => Ok(()),
                other => Err(other),
            },
        }
    }

    /// scheduled -> cancelled.
    pub async fn cancel_stream(
        &self,
        stream_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Stream, StoreError> {
        let update = Update::new()
            .require_eq("status", status(StreamStatus::Scheduled))
            .set("status", status(StreamStatus::Cancelled))
            .set("updated_at", time(now))
            .remove(GSI1PK)
            .remove(GSI1SK);
        self.close(stream_id, now).await?;
        match self
            .update(keys::stream_pk(stream_id), STREAM_SK.into(), update)
            .await
        {
            Ok(item) => from_item(item),
            Err(err) => {
                // Not scheduled any more: live (a start won) keeps its class open.
                if let Ok(Some(stream)) = self.stream(stream_id).await
                    && !stream.status.is_finished()
                {
                    self.reopen(stream_id).await?;
                }
                Err(err)
            }
        }
    }

    /// Streams in `status` (scheduled or live), newest first for live, soonest first
    /// for scheduled.
    pub async fn streams_in_status(
        &self,
        state: StreamStatus,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<Stream>, Option<Cursor>), StoreError> {
        let (items, next) = self
            .query_page(
                QuerySpec {
                    index: Some(GSI1),
                    partition_attr: GSI1PK,
                    partition_value: keys::status_pk(state),
                    sort_attr: GSI1SK,
                    sort_prefix: None,
                    sort_after: None,
                    forward: state == StreamStatus::Scheduled,
                    limit,
                    projection: None,
                },
                cursor,
            )
            .await?;
        Ok((
            items
                .into_iter()
                .map(stream_from)
                .collect::<Result<_, _>>()?,
            next,
        ))
    }

    /// A teacher's streams in every status, newest first.
    pub async fn streams_of_instructor(
        &self,
        instructor_id: &str,
        cursor: Option<&Cursor>,
        limit: i32,
    ) -> Result<(Vec<Stream>, Option<Cursor>), StoreError> {
        let (items, next) = self
            .query_page(
                QuerySpec {
                    index: Some(GSI2),
                    partition_attr: GSI2PK,
                    partition_value: keys::user_pk(instructor_id),
                    sort_attr: GSI2SK,
                    sort_prefix: Some(keys::STREAM_REF_PREFIX),
                    sort_after: None,
                    forward: false,
                    limit,
                    projection: None,
                },
                cursor,
            )
            .await?;
        Ok((
            items
                .into_iter()
                .map(stream_from)
                .collect::<Result<_, _>>()?,
            next,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QualitySettings;

    fn stream(status: StreamStatus) -> Stream {
        let at = "2030-01-01T09:00:00Z".parse().unwrap();
        Stream {
            id: "01J0000000000000000000000S".into(),
            title: "t".into(),
            description: String::new(),
            course_id: "01J0000000000000000000000C".into(),
            instructor_id: "teacher-1".into(),
            status,
            stream_key: "k".into(),
            viewer_count: 0,
            max_viewers: 0,
            unique_viewers: 0,
            total_watch_seconds: 0,
            scheduled_at: Some(at),
            started_at: None,
            ended_at: None,
            duration: None,
            quality_settings: QualitySettings::default(),
            is_public: true,
            is_recording: false,
            created_at: at,
            updated_at: at,
            ..Default::default()
        }
    }

    #[test]
    fn a_scheduled_stream_item_has_every_key() {
        let item = stream_item(&stream(StreamStatus::Scheduled)).unwrap();
        let get = |k: &str| item[k].as_s().unwrap().clone();
        assert_eq!(get("PK"), "STREAM#01J0000000000000000000000S");
        assert_eq!(get("SK"), "STREAM");
        assert_eq!(get("kind"), "stream");
        assert_eq!(get("GSI1PK"), "STATUS#scheduled");
        assert_eq!(
            get("GSI1SK"),
            "2030-01-01T09:00:00.000Z#01J0000000000000000000000S"
        );
        assert_eq!(get("GSI2PK"), "USER#teacher-1");
        assert_eq!(get("GSI2SK"), "STREAM#01J0000000000000000000000S");
    }

    #[test]
    fn ended_streams_are_not_in_the_status_index() {
        let item = stream_item(&stream(StreamStatus::Ended)).unwrap();
        assert!(!item.contains_key("GSI1PK"));
        assert!(!item.contains_key("GSI1SK"));
    }
}
