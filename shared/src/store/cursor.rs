//! Opaque page cursors: the `LastEvaluatedKey` of a Query, base64url-encoded.
//!
//! A cursor is only accepted for the partition it was issued for, so a crafted cursor
//! cannot start a listing inside someone else's data.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Item, QuerySpec, StoreError};

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

    /// The ExclusiveStartKey for a query of `spec`: the cursor must name exactly the
    /// key attributes of that query (the index's and the table's), in its partition,
    /// with a sort key inside the listed range. Anything else was not issued for this
    /// listing, and DynamoDB would either refuse it or start somewhere unintended.
    pub(crate) fn start_key(&self, spec: &QuerySpec<'_>) -> Result<Item, StoreError> {
        let mut expected = vec![
            crate::table::PK,
            crate::table::SK,
            spec.partition_attr,
            spec.sort_attr,
        ];
        expected.sort_unstable();
        expected.dedup();
        let named: Vec<&str> = self.0.keys().map(String::as_str).collect();
        if named != expected {
            return Err(StoreError::InvalidCursor);
        }
        if self.0.get(spec.partition_attr) != Some(&spec.partition_value) {
            return Err(StoreError::InvalidCursor);
        }
        let sort = &self.0[spec.sort_attr];
        let in_range = match (&spec.sort_prefix, &spec.sort_after) {
            (Some(prefix), _) => sort.starts_with(prefix),
            (None, Some(after)) if spec.forward => sort > after,
            (None, Some(after)) => sort < after,
            (None, None) => true,
        };
        if !in_range || self.0.values().any(String::is_empty) {
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

    fn chat_spec(after: &str) -> QuerySpec<'static> {
        QuerySpec {
            index: None,
            partition_attr: "PK",
            partition_value: "STREAM#1".into(),
            sort_attr: "SK",
            sort_prefix: None,
            sort_after: Some(after.into()),
            forward: true,
            limit: 10,
            projection: None,
        }
    }

    fn crafted(json: &str) -> Cursor {
        Cursor::decode(&URL_SAFE_NO_PAD.encode(json)).unwrap()
    }

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
        assert_eq!(decoded.start_key(&chat_spec("CHAT#00")).unwrap(), key);
    }

    #[test]
    fn garbage_and_foreign_cursors_are_refused() {
        assert!(Cursor::decode("not base64 !").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"[1,2]")).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(br#"{"secret":"x"}"#)).is_err());
        let other = crafted(r#"{"PK":"STREAM#2","SK":"CHAT#1"}"#);
        assert!(matches!(
            other.start_key(&chat_spec("CHAT#0")),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[test]
    fn cursors_outside_the_listed_range_or_missing_keys_are_refused() {
        let spec = chat_spec("CHAT#000000000005");
        for json in [
            r#"{"PK":"STREAM#1"}"#,
            r#"{"PK":"STREAM#1","SK":"CHAT#000000000001"}"#,
            r#"{"PK":"STREAM#1","SK":"CHAT#000000000009","GSI1PK":"x"}"#,
            r#"{"PK":"STREAM#1","SK":""}"#,
        ] {
            assert!(
                matches!(
                    crafted(json).start_key(&spec),
                    Err(StoreError::InvalidCursor)
                ),
                "{json}"
            );
        }
        let mut prefixed = chat_spec("");
        prefixed.sort_after = None;
        prefixed.sort_prefix = Some("PARTICIPANT#");
        assert!(
            crafted(r#"{"PK":"STREAM#1","SK":"STREAM"}"#)
                .start_key(&prefixed)
                .is_err()
        );
        assert!(
            crafted(r#"{"PK":"STREAM#1","SK":"PARTICIPANT#u"}"#)
                .start_key(&prefixed)
                .is_ok()
        );
    }

    #[test]
    fn index_cursors_need_the_index_and_table_keys() {
        let spec = QuerySpec {
            index: Some("GSI1"),
            partition_attr: "GSI1PK",
            partition_value: "STATUS#live".into(),
            sort_attr: "GSI1SK",
            sort_prefix: None,
            sort_after: None,
            forward: false,
            limit: 10,
            projection: None,
        };
        let full = r#"{"GSI1PK":"STATUS#live","GSI1SK":"2030#s","PK":"STREAM#s","SK":"STREAM"}"#;
        assert!(crafted(full).start_key(&spec).is_ok());
        let partial = r#"{"GSI1PK":"STATUS#live","GSI1SK":"2030#s"}"#;
        assert!(crafted(partial).start_key(&spec).is_err());
    }
}
