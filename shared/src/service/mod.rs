//! The rules: who may do what, and which state changes are allowed.
//!
//! Each function takes the store, the authenticated caller and validated input, and
//! returns a model or an [`ApiError`]. Handlers in `functions/` only parse and map.

pub mod access;
pub mod attendance;
pub mod chat;
pub mod connections;
pub mod courses;
pub mod participation;
pub mod presence;
pub mod questions;
pub mod recording;
pub mod replay;
pub mod roles;
pub mod stats;
pub mod streams;
pub mod sweep;
pub mod video;

use crate::error::ApiError;
use crate::store::Cursor;

/// Page size bounds of every listing.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

/// Paging parameters from a query string.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<Cursor>,
    pub limit: i32,
}

impl PageRequest {
    /// Parses `cursor` and `limit` (1..=100, default 20).
    pub fn parse(cursor: Option<&str>, limit: Option<&str>) -> Result<Self, ApiError> {
        let cursor = cursor
            .filter(|c| !c.is_empty())
            .map(|c| {
                Cursor::decode(c)
                    .map_err(|e| ApiError::bad_request("invalid_cursor", e.to_string()))
            })
            .transpose()?;
        let limit = match limit {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<i32>()
                .ok()
                .filter(|l| (1..=MAX_PAGE_SIZE).contains(l))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        Ok(Self { cursor, limit })
    }
}
