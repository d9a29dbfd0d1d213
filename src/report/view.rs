//! Small view-model pieces shared by the pages and the sections.

use crate::text::{percent, thousands};

/// A labelled value.
pub struct KeyValue {
    pub key: &'static str,
    pub value: String,
}

pub fn kv(key: &'static str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key,
        value: value.into(),
    }
}

/// An optional value, or a dash.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "–".to_owned())
}

/// A table row of totals with their share of a whole.
pub struct Row {
    pub name: String,
    pub allocations: String,
    pub bytes: String,
    pub share: String,
}

pub fn row(name: String, allocations: u64, bytes: u64, whole: u64) -> Row {
    Row {
        name,
        allocations: thousands(allocations),
        bytes: thousands(bytes),
        share: percent(bytes, whole),
    }
}
