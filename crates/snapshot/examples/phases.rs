//! Times the phases of an inspection: `phases FILE`. For profiling; the figures are
//! computed three ways (check then status, and the one-pass check_and_status).

use std::time::Instant;

use kastellan_snapshot::{SnapshotFile, bbolt, etcd, trailer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: phases FILE")?;
    let t = Instant::now();
    let file = SnapshotFile::open(&path)?;
    let (data, _) = trailer::split(file.bytes());
    let db = bbolt::Db::open(data).map_err(|f| f.to_string())?;
    eprintln!("open: {:?}", t.elapsed());

    let t = Instant::now();
    let (checked, status) = etcd::check_and_status(&db);
    eprintln!("check_and_status: {:?} {status:?}", t.elapsed());

    let t = Instant::now();
    let checked_again = bbolt::check(&db);
    eprintln!("check alone: {:?}", t.elapsed());
    let t = Instant::now();
    let tree = checked_again.tree().ok_or("damaged")?;
    let status = etcd::status(&tree).map_err(|f| f.to_string())?;
    eprintln!("status alone: {:?} {status:?}", t.elapsed());
    drop(checked);
    Ok(())
}
