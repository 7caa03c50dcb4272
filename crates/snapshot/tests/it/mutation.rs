//! Random damage to a real snapshot must never make the reader panic.

use kastellan_snapshot::{Options, inspect};
use proptest::prelude::*;

use crate::support::fixture;

fn sample() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(fixture("etcd35.snapshot.db")).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Flips, overwrites and cuts: the reader reports, it does not panic.
    #[test]
    fn mutation_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
        header_bias in any::<bool>(),
    ) {
        let mut bytes = sample().to_vec();
        let ps = 4096;
        for (at, value) in edits {
            // Half of the cases hit page headers and element arrays, where damage
            // reaches the parser rather than only the values.
            let i = if header_bias {
                let page = at.index(bytes.len() / ps);
                page * ps + at.index(64)
            } else {
                at.index(bytes.len())
            };
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let verify_trailer = bytes.len() % 512 == 32;
        if let Ok(report) = inspect(&bytes, &Options { verify_trailer }) {
            let _ = report.checks();
            let _ = serde_json::to_string(&report).unwrap();
        }
    }
}
