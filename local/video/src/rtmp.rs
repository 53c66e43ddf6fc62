//! The RTMP ingest server: one task per encoder connection, driving a scuffle-rtmp
//! session whose handler checks the stream key on publish and feeds the media to the
//! remuxer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use scuffle_rtmp::ServerSession;
use scuffle_rtmp::command_messages::UnknownCommand;
use scuffle_rtmp::messages::UnknownMessage;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::registry::{Publish, Registry, lock};
use crate::remux::{MessageKind, Remuxed, Remuxer};

pub(crate) async fn serve(
    registry: Arc<Registry>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "rtmp connection");
                    connections.spawn(run_connection(Arc::clone(&registry), stream, stop.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "rtmp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    // Every connection sees the same stop and ends its session.
    while connections.join_next().await.is_some() {}
}

/// Resolves once `stop` is true; never if its sender is gone without saying so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_connection(
    registry: Arc<Registry>,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
) {
    let idle_timeout = registry.config.idle_timeout;
    let connection = Arc::new(Connection {
        registry,
        cut: Arc::new(Notify::new()),
        last_media: Mutex::new(Instant::now()),
        publish: Mutex::new(None),
    });
    let _end_on_drop = EndSessionOnDrop(Arc::clone(&connection));
    let session = ServerSession::new(stream, PublishHandler(Arc::clone(&connection)));
    // Dropping the session future closes the socket: that is how a session is cut off.
    let ended_by = tokio::select! {
        result = session.run() => match result {
            Ok(_) => "connection closed",
            Err(error) => {
                tracing::debug!(%error, "rtmp session error");
                "connection error"
            }
        },
        () = connection.cut.notified() => "cut off",
        () = stopped(&mut stop) => "server stopping",
        () = connection.idle(idle_timeout) => "idle",
    };
    if let Some(publish) = connection.finish() {
        tracing::debug!(
            channel_id = publish.channel_id,
            session_id = publish.session_id,
            ended_by,
            "rtmp publish over"
        );
    }
}

struct Connection {
    registry: Arc<Registry>,
    cut: Arc<Notify>,
    last_media: Mutex<Instant>,
    publish: Mutex<Option<Publishing>>,
}

/// A connection's accepted publish.
struct Publishing {
    publish: Publish,
    remuxer: Remuxer,
    failed: bool,
}

impl Connection {
    /// Resolves once no audio or video has arrived for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let deadline = *lock(&self.last_media) + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }

    fn start_publish(&self, app_name: &str, stream_key: &str) -> bool {
        let mut publishing = lock(&self.publish);
        // One publish per connection, as encoders do.
        if publishing.is_some() {
            return false;
        }
        let Some(publish) =
            self.registry
                .start_session(app_name, stream_key, Arc::clone(&self.cut))
        else {
            return false;
        };
        *publishing = Some(Publishing {
            publish,
            remuxer: Remuxer::new(self.registry.config.segment_target),
            failed: false,
        });
        true
    }

    fn on_media(&self, data: SessionData) {
        let (kind, timestamp_ms, body) = match data {
            SessionData::Video { timestamp, data } => (MessageKind::Video, timestamp, data),
            SessionData::Audio { timestamp, data } => (MessageKind::Audio, timestamp, data),
            SessionData::Amf0 { timestamp, data } => (MessageKind::Metadata, timestamp, data),
        };
        let mut publishing = lock(&self.publish);
        let Some(publishing) = publishing.as_mut().filter(|p| !p.failed) else {
            return;
        };
        let now = Instant::now();
        match kind {
            MessageKind::Video => {
                *lock(&self.last_media) = now;
                lock(&publishing.publish.health).record_video(now, timestamp_ms, &body);
            }
            MessageKind::Audio => {
                *lock(&self.last_media) = now;
                lock(&publishing.publish.health).record_audio(now, &body);
            }
            MessageKind::Metadata => {}
        }
        match publishing
            .remuxer
            .push(kind, timestamp_ms, body, Utc::now())
        {
            Ok(remuxed) => {
                for output in remuxed {
                    match output {
                        Remuxed::Init { data, tracks } => {
                            self.registry
                                .publish_init(&publishing.publish, data, tracks);
                        }
                        Remuxed::Segment(segment) => {
                            self.registry.publish_segment(&publishing.publish, &segment);
                        }
                    }
                }
            }
            Err(error) => {
                publishing.failed = true;
                self.registry
                    .fail_session(&publishing.publish, error.to_string());
            }
        }
    }

    /// Lists the last partial segment (if the session is still live) and ends the session.
    fn finish(&self) -> Option<Publish> {
        let mut publishing = lock(&self.publish).take()?;
        if !publishing.failed
            && let Some(tail) = publishing.remuxer.finish()
        {
            self.registry.publish_segment(&publishing.publish, &tail);
        }
        self.registry.end_session(&publishing.publish);
        Some(publishing.publish)
    }
}

/// Ends the session when the connection task is dropped without finishing: after a
/// panic (say, on media a parser chokes on) or with its runtime. Otherwise the channel
/// would stay live with nobody publishing.
struct EndSessionOnDrop(Arc<Connection>);

impl Drop for EndSessionOnDrop {
    fn drop(&mut self) {
        if let Some(publishing) = lock(&self.0.publish).take() {
            self.0.registry.end_session(&publishing.publish);
        }
    }
}

struct PublishHandler(Arc<Connection>);

impl SessionHandler for PublishHandler {
    async fn on_publish(
        &mut self,
        _stream_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<(), ServerSessionError> {
        if self.0.start_publish(app_name, stream_name) {
            return Ok(());
        }
        tracing::info!(app_name, "rtmp publish refused: stream key not allowed");
        // ServerSessionError has no "refused" variant: park here and let the connection
        // task drop the session, which closes the socket before any media is read.
        self.0.cut.notify_one();
        std::future::pending().await
    }

    async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
        self.0.finish();
        Ok(())
    }

    async fn on_data(
        &mut self,
        _stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        self.0.on_media(data);
        Ok(())
    }

    // The defaults log the command, and releaseStream/FCPublish carry the stream key.
    async fn on_unknown_command(
        &mut self,
        _stream_id: u32,
        _command: UnknownCommand<'_>,
    ) -> Result<(), ServerSessionError> {
        Ok(())
    }

    async fn on_unknown_message(
        &mut self,
        _stream_id: u32,
        _message: UnknownMessage,
    ) -> Result<(), ServerSessionError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::IngestConfig;

    #[test]
    fn a_connection_task_dropped_midway_ends_its_session() {
        let (events, _receiver) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry::new(IngestConfig::default(), events));
        registry.allow_key("sk", "ch");
        let connection = Arc::new(Connection {
            registry: Arc::clone(&registry),
            cut: Arc::new(Notify::new()),
            last_media: Mutex::new(Instant::now()),
            publish: Mutex::new(None),
        });
        assert!(connection.start_publish("app", "sk"));
        assert!(
            !connection.start_publish("app", "sk"),
            "one publish per connection"
        );
        assert!(registry.is_live("ch"));
        drop(EndSessionOnDrop(connection));
        assert!(!registry.is_live("ch"));
    }
}
