//! Stack ids: a stack's identity across dumps, reports and runs.
//!
//! Stack indices differ from dump to dump, and users keep reports and compare them
//! across runs and leakdiag versions, so the id is a documented, stable function of
//! the stack's frames (docs/report-schema.md, "Stack ids"): XXH3-64 (seed 0) over,
//! for each frame in stack order,
//!
//! - a frame in a module: the byte `0x01`, the length of the module's file name in
//!   ASCII lower case as a little-endian `u32`, that name's UTF-8 bytes, and the
//!   frame's offset in the module as a little-endian `u64`;
//! - a frame in no module: the byte `0x02` and its address as a little-endian `u64`.
//!
//! The hash comes from `xxhash-rust`, whose XXH3 output is fixed by the XXH3
//! specification, not by the Rust toolchain (as `std`'s `DefaultHasher` would be).

use serde::{Serialize, Serializer};
use std::fmt;

/// A stack's identity: 64 bits, written as 16 lower-case hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackId(pub u64);

/// One frame as the id sees it.
#[derive(Clone, Copy, Debug)]
pub enum IdFrame<'a> {
    /// A frame inside module `name` (its file name) at `offset` from its base.
    Module { name: &'a str, offset: u64 },
    /// A frame in no module.
    Address(u64),
}

impl StackId {
    /// The id of a stack of `frames`, in stack order.
    pub fn of<'a>(frames: impl IntoIterator<Item = IdFrame<'a>>) -> StackId {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for frame in frames {
            match frame {
                IdFrame::Module { name, offset } => {
                    let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
                    hasher.update(&[0x01]);
                    hasher.update(&len.to_le_bytes());
                    // ASCII lower case: Windows file names compare without case, and
                    // ASCII folding does not depend on a Unicode version.
                    for chunk in name.as_bytes().chunks(64) {
                        hasher.update(&chunk.to_ascii_lowercase());
                    }
                    hasher.update(&offset.to_le_bytes());
                }
                IdFrame::Address(address) => {
                    hasher.update(&[0x02]);
                    hasher.update(&address.to_le_bytes());
                }
            }
        }
        StackId(hasher.digest())
    }
}

impl fmt::Display for StackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for StackId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(StackId)
    }
}

impl Serialize for StackId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_vector_of_docs_report_schema() {
        // The example of docs/report-schema.md; its bytes are hashed there too.
        let id = StackId::of([
            IdFrame::Module {
                name: "OdbcVend.dll",
                offset: 0x1366,
            },
            IdFrame::Module {
                name: "leakyapp.exe",
                offset: 0x1a2b,
            },
            IdFrame::Address(0x7ff6_0000_1000),
        ]);
        assert_eq!(id.to_string(), STACK_ID_TEST_VECTOR);
        assert_eq!(id.to_string().parse::<StackId>(), Ok(id));
    }

    #[test]
    fn case_of_module_names_does_not_matter_but_everything_else_does() {
        let one = |name, offset| StackId::of([IdFrame::Module { name, offset }]);
        assert_eq!(one("ODBCVEND.DLL", 1), one("odbcvend.dll", 1));
        assert_ne!(one("odbcvend.dll", 1), one("odbcvend.dll", 2));
        assert_ne!(one("a.dll", 1), one("b.dll", 1));
        // Name/offset boundaries cannot be confused.
        assert_ne!(
            StackId::of([IdFrame::Module {
                name: "a",
                offset: 0
            }]),
            StackId::of([IdFrame::Address(0)])
        );
        assert_ne!(StackId::of([]), StackId::of([IdFrame::Address(0)]));
    }

    // Computed independently with Python's `xxhash` package (xxh3_64_intdigest) over the
    // bytes listed in docs/report-schema.md.
    const STACK_ID_TEST_VECTOR: &str = "7269479c82705d1c";
}
