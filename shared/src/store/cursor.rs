//! Opaque page cursors: the `LastEvaluatedKey` of a Query, base64url-encoded.
//!
//! A cursor is only accepted for the partition it was issued for, so a crafted cursor
//! cannot start a listing inside someone else's data.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Item, StoreError};

/// The position after the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, String>);

/// Why a cursor from a client was refused.
#[derive(Debug, thiserror::Error)]
#[error("cursor is not valid for this listing")]
pub struct InvalidCursor;

impl Cursor {
    pub(crate) fn from_key(key: &Item) -> Self {
        Self(
            key.iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                .collect(),
        )
    }

    /// The string a client passes back as `cursor`.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(&self.0).expect("a map of strings serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a client's cursor; only its shape is checked here.
    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        if raw.len() > 2048 {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| InvalidCursor)?;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
        let known = [
            crate::table::PK,
            crate::table::SK,
            crate::table::GSI1PK,
            crate::table::GSI1SK,
            crate::table::GSI2PK,
            crate::table::GSI2SK,
        ];
        if map.is_empty() || map.keys().any(|k| !known.contains(&k.as_str())) {
            return Err(InvalidCursor);
        }
        Ok(Self(map))
    }

    /// The ExclusiveStartKey for a query of `partition_attr = partition_value`.
    pub(crate) fn start_key(
        &self,
        partition_attr: &str,
        partition_value: &str,
    ) -> Result<Item, StoreError> {
        if self.0.get(partition_attr).map(String::as_str) != Some(partition_value) {
            return Err(StoreError::InvalidCursor);
        }
        Ok(self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let key: Item = [
            ("PK".to_string(), AttributeValue::S("STREAM#1".into())),
            ("SK".to_string(), AttributeValue::S("CHAT#01".into())),
        ]
        .into();
        let cursor = Cursor::from_key(&key);
        let decoded = Cursor::decode(&cursor.encode()).unwrap();
        assert_eq!(decoded, cursor);
        assert_eq!(decoded.start_key("PK", "STREAM#1").unwrap(), key);
    }

    #[test]
    fn garbage_and_foreign_cursors_are_refused() {
        assert!(Cursor::decode("not base64 !").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"[1,2]")).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(br#"{"secret":"x"}"#)).is_err());
        let other =
            Cursor::decode(&URL_SAFE_NO_PAD.encode(br#"{"PK":"STREAM#2","SK":"CHAT#1"}"#)).unwrap();
        assert!(matches!(
            other.start_key("PK", "STREAM#1"),
            Err(StoreError::InvalidCursor)
        ));
    }
}
