//! How each module's symbols were found, as the report's Symbols table shows it.

use serde::Serialize;

/// A module's symbol status, as the report's "Symbols" table shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SymbolsRow {
    pub module: String,
    pub status: SymbolStatus,
    pub pdb: Option<String>,
    pub message: Option<String>,
    pub searched: Vec<SearchAttempt>,
}
/// How a module's symbols came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SymbolStatus {
    /// A PDB with the module's GUID and age was found and opened.
    #[serde(rename = "loaded")]
    Loaded,
    /// A PDB was found by name only; the module's identity was unknown.
    #[serde(rename = "loaded (unverified)")]
    LoadedUnverified,
    /// No PDB of that name anywhere on the path.
    #[serde(rename = "not found")]
    NotFound,
    /// Only PDBs with another GUID/age were found.
    #[serde(rename = "mismatched")]
    Mismatched,
    /// A PDB was found but could not be read or parsed.
    #[serde(rename = "error")]
    Error,
}

/// One place searched for a module's identity or PDB, and what was there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchAttempt {
    /// A file path, URL or description such as `dump memory at 0x180000000`.
    pub place: String,
    /// e.g. `not found`, `found`, `HTTP 404`, `timed out after 2s`, `corrupt PDB: …`.
    pub outcome: String,
}

impl SearchAttempt {
    pub fn new(place: impl Into<String>, outcome: impl Into<String>) -> Self {
        Self {
            place: place.into(),
            outcome: outcome.into(),
        }
    }
}

impl std::fmt::Display for SymbolStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loaded => "loaded",
            Self::LoadedUnverified => "loaded (unverified)",
            Self::NotFound => "not found",
            Self::Mismatched => "mismatched",
            Self::Error => "error",
        })
    }
}
