//! The multi-call bootstrap: one binary holds every function's handler, and each Lambda
//! function (its own IAM role, routes and memory) runs it with the function's name as
//! its `Handler`, which Lambda passes to a custom runtime as `_HANDLER`.
//!
//! One release build links the AWS SDK once for all the functions, instead of once per
//! function. [`entry`] is the one table from a function's name to what serves it; the
//! template's tests check that every deployed function has an entry and every entry a
//! function.

/// What serves a function's events.
#[derive(Clone, Copy)]
pub enum Entry {
    /// An HTTP API route's handler (API Gateway payload 2.0).
    Http(livestream_api::Handler),
    /// A WebSocket route's function (`ws-connect`, `ws-disconnect`, `ws-default`).
    WebSocket(&'static str),
    /// The change-stream consumer.
    Broadcast,
    /// The workers that post pages of a large stream from the fan-out queue.
    FanOut,
    /// The scheduled presence sweeper.
    SweepPresence,
    /// The video service's stream state events.
    VideoEvents,
}

/// The functions served by the broadcaster crate, by name.
const BROADCAST: &[(&str, Entry)] = &[
    ("broadcast", Entry::Broadcast),
    ("fan-out", Entry::FanOut),
    ("sweep-presence", Entry::SweepPresence),
    ("video-events", Entry::VideoEvents),
];

/// What serves the function named `name`, if this bootstrap has it.
pub fn entry(name: &str) -> Option<Entry> {
    if let Some(handler) = livestream_api::handler(name) {
        return Some(Entry::Http(handler));
    }
    if let Some((_, function)) = livestream_ws::ROUTES.iter().find(|(_, f)| *f == name) {
        return Some(Entry::WebSocket(function));
    }
    BROADCAST
        .iter()
        .find(|(function, _)| *function == name)
        .map(|(_, entry)| *entry)
}

/// Every function name this bootstrap serves, in a stable order.
pub fn functions() -> Vec<&'static str> {
    let http = livestream_api::HANDLERS.iter().map(|(name, _)| *name);
    let ws = livestream_ws::ROUTES.iter().map(|(_, name)| *name);
    let broadcast = BROADCAST.iter().map(|(name, _)| *name);
    http.chain(ws).chain(broadcast).collect()
}

/// The start-up error of a bootstrap asked for a function it does not have.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no handler named {0:?}: set the function's Handler (_HANDLER) to one of: {list}",
        list = functions().join(", ")
    )]
    UnknownHandler(String),
    #[error("_HANDLER is not set: the function's Handler names the function to run")]
    NoHandler,
}

/// Runs the function named `handler` until the runtime stops: one tokio runtime on
/// this thread (a Lambda instance serves one event at a time, so worker threads
/// would only cost start-up time and memory), then that function's runtime loop.
pub fn run(handler: Option<&str>) -> Result<(), lambda_runtime::Error> {
    let name = handler.ok_or(StartError::NoHandler)?;
    let entry = entry(name).ok_or_else(|| StartError::UnknownHandler(name.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match entry {
            Entry::Http(handler) => livestream_api::serve(handler).await,
            Entry::WebSocket(function) => livestream_ws::serve(function).await,
            Entry::Broadcast => livestream_broadcast::serve().await,
            Entry::FanOut => livestream_broadcast::serve_fan_out().await,
            Entry::SweepPresence => livestream_broadcast::serve_sweep().await,
            Entry::VideoEvents => livestream_broadcast::serve_video_events().await,
        }
    })
}

/// A bootstrap's `main`: runs the function named `handler`; on a start-up error, says
/// why on stderr (the function's log) and exits non-zero, which Lambda reports as an
/// init failure.
pub fn main(handler: Option<&str>) {
    if let Err(err) = run(handler) {
        eprintln!("{err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_one_entry() {
        let names = functions();
        for name in &names {
            assert!(entry(name).is_some(), "{name}");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a name twice: {names:?}");
    }

    #[test]
    fn an_unknown_handler_is_refused_by_name() {
        let err = run(Some("get-streams")).unwrap_err().to_string();
        assert!(err.contains("\"get-streams\""), "{err}");
        assert!(err.contains("get-stream,"), "{err}");
        let err = run(None).unwrap_err().to_string();
        assert!(err.contains("_HANDLER"), "{err}");
    }

    #[test]
    fn every_http_route_has_its_handler() {
        for route in livestream::routes::ROUTES {
            assert!(
                matches!(entry(route.function), Some(Entry::Http(_))),
                "{}",
                route.function
            );
        }
        assert_eq!(
            livestream_api::HANDLERS.len(),
            livestream::routes::ROUTES
                .iter()
                .map(|r| r.function)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
}
