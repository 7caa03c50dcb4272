//! Arbitrary bytes as a snapshot file: the reader must report, never panic or hang.
#![no_main]

use kastellan_snapshot::{Options, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for verify_trailer in [false, true] {
        if let Ok(report) = inspect(data, &Options { verify_trailer }) {
            let _ = report.checks();
            let _ = report.is_clean();
        }
    }
});
