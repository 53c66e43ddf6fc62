//! What every HTTP and WebSocket function needs, built once per cold start.

use crate::auth::{Authenticator, Identity};
use crate::error::ApiError;
use crate::recordings::Recordings;
use crate::store::Store;
use crate::video::Video;

/// The clients and settings a function's handler borrows.
pub struct AppState {
    pub store: Store,
    pub auth: Authenticator,
    /// The video service (`None`: a deployment without video).
    pub video: Option<Video>,
    /// The recordings' storage (`None`: a deployment that does not record).
    pub recordings: Option<Recordings>,
}

impl AppState {
    /// Without video.
    pub fn new(store: Store, auth: Authenticator) -> Self {
        Self {
            store,
            auth,
            video: None,
            recordings: None,
        }
    }

    pub fn with_video(self, video: Video) -> Self {
        Self {
            video: Some(video),
            ..self
        }
    }

    pub fn with_recordings(self, recordings: Recordings) -> Self {
        Self {
            recordings: Some(recordings),
            ..self
        }
    }

    /// From the environment: `TABLE_NAME`, the JWT settings (see
    /// [`Authenticator::from_env`]), optionally `DYNAMODB_ENDPOINT`, and the video
    /// settings (see [`Video::from_env`]) and the recordings' (see
    /// [`Recordings::from_env`]). Fails fast, naming what is missing.
    pub async fn from_env() -> Result<Self, String> {
        let auth = Authenticator::from_env().map_err(|e| e.to_string())?;
        let store = Store::from_env().await?;
        let video = Video::from_env().await?;
        let recordings = Recordings::from_env().await?;
        Ok(Self {
            store,
            auth,
            video,
            recordings,
        })
    }

    /// The caller of an HTTP request, from its bearer token (noted for the request's
    /// log line).
    pub async fn authenticate(&self, req: &lambda_http::Request) -> Result<Identity, ApiError> {
        let who = self.auth.authenticate_headers(req.headers()).await?;
        crate::telemetry::set_caller(&who.user_id);
        Ok(who)
    }
}
