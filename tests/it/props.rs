//! Property tests: random and mutated streams and dumps never panic or hang; every
//! failure is an error value.

use crate::synth::{demo_dump, demo_stream};
use leakdiag::analysis::scripts::leak::{analyze, LeakOptions};
use leakdiag::analysis::{analyze_dump, AnalyzeOptions};
use leakdiag::dump::stream::{field, AllocationStream};
use leakdiag::model::ModuleMap;
use proptest::prelude::*;
use std::sync::OnceLock;

fn valid_stream() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| demo_stream(1, 1_700_000_000))
}

fn valid_dump() -> &'static [u8] {
    static D: OnceLock<Vec<u8>> = OnceLock::new();
    D.get_or_init(|| demo_dump(1))
}

/// Parses and, when the stream is accepted, analyses it: an accepted stream gives
/// totals that add up (or the 2^64 refusal exactly when the sizes overflow), a
/// refused one an error that says what is wrong.
fn exercise(bytes: &[u8]) {
    match AllocationStream::parse(bytes) {
        Ok(stream) => {
            let direct = stream
                .allocations()
                .try_fold(0u64, |total, a| total.checked_add(a.size));
            let analysis = analyze(
                &stream,
                &ModuleMap::default(),
                &LeakOptions::default(),
                &Default::default(),
            );
            match analysis {
                Ok(a) => {
                    assert_eq!(Some(a.totals.bytes), direct);
                    assert_eq!(a.totals.allocations, stream.allocation_count() as u64);
                    let by_module: u64 = a.modules.iter().map(|m| m.bytes).sum();
                    assert_eq!(by_module, a.totals.bytes, "modules add up to the total");
                }
                Err(e) => assert!(direct.is_none(), "refused a stream that sums: {e}"),
            }
            let _ = stream.metadata().count();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

const HEADER_FIELDS: [usize; 10] = [
    field::FRAMES_OFFSET,
    field::FRAME_COUNT,
    field::STACKS_OFFSET,
    field::STACK_COUNT,
    field::ALLOCATIONS_OFFSET,
    field::ALLOCATION_COUNT,
    field::METADATA_OFFSET,
    field::METADATA_SIZE,
    field::TRACKING_START,
    field::SNAPSHOT_TIME,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 92..600)) {
        let mut bytes = b"LEAK\x01\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&tail);
        bytes[8..12].copy_from_slice(&96u32.to_le_bytes());
        exercise(&bytes);
    }

    #[test]
    fn mutated_header_fields_are_errors_or_valid(
        which in 0..HEADER_FIELDS.len(),
        value in prop_oneof![any::<u64>(), 0u64..4096, Just(u64::MAX), Just(u64::MAX / 40 + 1)],
    ) {
        let mut bytes = valid_stream().to_vec();
        let at = HEADER_FIELDS[which];
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        exercise(&bytes);
    }

    #[test]
    fn flipped_bytes_in_a_stream_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_stream().to_vec();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let keep = cut.index(bytes.len() + 1);
        exercise(&bytes[..keep.max(bytes.len() * 3 / 4)]);
        exercise(&bytes[..keep]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn mutated_and_truncated_dumps_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_dump().to_vec();
        // Aim half the flips at the first KiB, where the header and directory live.
        for (n, (i, v)) in flips.into_iter().enumerate() {
            let len = if n % 2 == 0 { 1024.min(bytes.len()) } else { bytes.len() };
            let i = i.index(len);
            bytes[i] = v;
        }
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.dmp");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let _ = analyze_dump(&path, &AnalyzeOptions::default());
        let file = leakdiag::dump::DumpFile::open(&path);
        if let Ok(file) = file {
            let _ = leakdiag::dump::inspect::inspect(&mut std::io::sink(), &file);
        }
    }
}
