//! The handles section: open handles by type.

use serde::Serialize;

/// The type name shown for handles whose descriptor has none.
pub const NO_TYPE: &str = "(no type)";

/// Open handles of one type.
#[derive(Clone, Debug, Serialize)]
pub struct HandleType {
    pub type_name: String,
    pub count: u64,
}

/// The section.
#[derive(Clone, Debug, Serialize)]
pub struct Handles {
    /// Whether the dump has a handle-data stream; when false only `message` is set.
    pub present: bool,
    pub message: Option<String>,
    pub total: u64,
    /// Every type, most handles first (ties by name).
    pub types: Vec<HandleType>,
}

impl Handles {
    pub fn absent(message: impl Into<String>) -> Self {
        Handles {
            present: false,
            message: Some(message.into()),
            total: 0,
            types: Vec::new(),
        }
    }
}
