//! Prints the inspection of a snapshot file as JSON: `inspect FILE [--verify]`.
//! Handy for profiling the reader without building the whole CLI.

use kastellan_snapshot::{Options, SnapshotFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: inspect FILE [--verify]")?;
    let verify_trailer = args.next().as_deref() == Some("--verify");
    let report = SnapshotFile::open(&path)?.inspect(&Options { verify_trailer })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
