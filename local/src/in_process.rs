//! An HTTP connector for an API this process serves itself: each request goes to that
//! API's router as a call, not over loopback. The in-process functions post every live
//! frame to `@connections` this way (and close and check connections through the SDK
//! client over the same connector); on loopback, each post was a TCP round trip and an
//! HTTP encode and parse at both ends, a quarter of the stack's CPU when it delivered
//! to 1,000 sockets. The request (built as for API Gateway) and the handler are the
//! ones HTTP carries, and `cargo lambda` mode, whose functions run in other processes,
//! still posts over HTTP.

use std::sync::{Arc, OnceLock};

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use tower::ServiceExt;

/// Larger than any request or answer of the APIs served (`@connections` takes 128 KiB).
const BODY_LIMIT: usize = 1024 * 1024;

/// The router requests go to, set once it exists: the functions' clients are built
/// before the API they call.
#[derive(Clone, Debug, Default)]
pub struct RouterSlot(Arc<OnceLock<axum::Router>>);

impl RouterSlot {
    /// Serves the requests from now on; a second call is ignored.
    pub fn set(&self, router: axum::Router) {
        let _ = self.0.set(router);
    }

    /// The SDK's HTTP connector that sends to this router.
    pub fn connector(&self) -> SharedHttpConnector {
        SharedHttpConnector::new(RouterConnector(self.clone()))
    }
}

#[derive(Debug)]
struct RouterConnector(RouterSlot);

impl HttpConnector for RouterConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let router = self.0.0.get().cloned();
        HttpConnectorFuture::new(async move {
            let router = router.ok_or_else(|| {
                ConnectorError::io("the in-process API is not serving yet".into())
            })?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            let body = match body.bytes() {
                Some(bytes) => axum::body::Body::from(bytes.to_vec()),
                None => {
                    return Err(ConnectorError::other(
                        "a streaming body cannot be sent in-process".into(),
                        None,
                    ));
                }
            };
            let response = router
                .oneshot(http::Request::from_parts(parts, body))
                .await
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(bytes)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::Path;
    use livestream::realtime::{Connections, PostError};

    use super::*;

    /// Each post the router got: the connection, whether it was signed, the body.
    type Seen = Arc<Mutex<Vec<(String, bool, Vec<u8>)>>>;

    #[tokio::test]
    async fn posts_reach_the_router_unsigned_and_its_answers_come_back() {
        let seen: Seen = Arc::default();
        let slot = RouterSlot::default();
        // No port is listening here: only the slot's router can answer.
        let connections = Connections::local_over("http://127.0.0.1:9", slot.connector());
        assert!(
            connections.post("early", b"x".to_vec()).await.is_err(),
            "nothing answers before the router is set"
        );
        let recorded = seen.clone();
        slot.set(axum::Router::new().route(
            "/@connections/{id}",
            axum::routing::post(
                move |Path(id): Path<String>, headers: http::HeaderMap, body: axum::body::Bytes| {
                    let recorded = recorded.clone();
                    async move {
                        let signed = headers.contains_key(http::header::AUTHORIZATION);
                        recorded
                            .lock()
                            .unwrap()
                            .push((id.clone(), signed, body.to_vec()));
                        if id == "gone" {
                            crate::websocket::gone()
                        } else {
                            axum::response::IntoResponse::into_response(http::StatusCode::OK)
                        }
                    }
                },
            ),
        ));

        connections.post("c1", b"{\"a\":1}".to_vec()).await.unwrap();
        assert!(matches!(
            connections.post("gone", b"{}".to_vec()).await,
            Err(PostError::Gone)
        ));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                ("c1".to_string(), false, b"{\"a\":1}".to_vec()),
                ("gone".to_string(), false, b"{}".to_vec()),
            ]
        );
    }
}
