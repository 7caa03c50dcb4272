//! CRC-32C of a stream of byte slices, spread over the available cores.
//!
//! The stream is cut into batches of slices; each batch's CRC is computed on its own
//! (in any thread), and the batch CRCs are joined in stream order with
//! `crc32c_combine`, which gives exactly the CRC of the concatenated stream.

use std::sync::{Mutex, mpsc};

/// Streams shorter than this are hashed on the calling thread.
pub const PARALLEL_MIN_BYTES: usize = 32 << 20;
/// A batch is handed to a worker once it holds this many bytes...
const BATCH_BYTES: usize = 4 << 20;
/// ...or this many slices.
const BATCH_SLICES: usize = 1 << 16;

/// CRC-32C of the slices `produce` feeds to its sink, in order. `expected_bytes` (an
/// upper bound of the stream's length) decides whether threads are worth it.
/// `produce`'s error is passed through.
pub fn crc32c_of<'a, E>(
    expected_bytes: usize,
    produce: impl FnOnce(&mut dyn FnMut(&'a [u8])) -> Result<(), E>,
) -> Result<u32, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || expected_bytes < PARALLEL_MIN_BYTES {
        let mut crc = 0u32;
        produce(&mut |s| crc = crc32c::crc32c_append(crc, s))?;
        return Ok(crc);
    }
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<(usize, Vec<&'a [u8]>)>(threads * 2);
    let jobs_rx = Mutex::new(jobs_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<(usize, u32, usize)>();
        for _ in 0..threads {
            let (jobs_rx, done_tx) = (&jobs_rx, done_tx.clone());
            scope.spawn(move || {
                loop {
                    // A poisoned lock means another worker panicked; stop, and let the
                    // scope propagate that panic.
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((index, slices)) = job else { return };
                    let (crc, len) = slices.iter().fold((0u32, 0usize), |(c, l), s| {
                        (crc32c::crc32c_append(c, s), l + s.len())
                    });
                    if done_tx.send((index, crc, len)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut batch: Vec<&'a [u8]> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut batches = 0usize;
        let mut workers_gone = false;
        let result = produce(&mut |s| {
            batch.push(s);
            batch_bytes += s.len();
            if batch_bytes >= BATCH_BYTES || batch.len() >= BATCH_SLICES {
                let full = std::mem::take(&mut batch);
                workers_gone |= jobs_tx.send((batches, full)).is_err();
                batches += 1;
                batch_bytes = 0;
            }
        });
        if !batch.is_empty() {
            workers_gone |= jobs_tx.send((batches, batch)).is_err();
            batches += 1;
        }
        drop(jobs_tx);
        result?;

        let mut parts: Vec<(usize, u32, usize)> = done_rx.iter().collect();
        // Only a worker panic loses batches, and the scope re-raises that panic.
        debug_assert!(workers_gone || parts.len() == batches);
        parts.sort_unstable_by_key(|p| p.0);
        Ok(parts.into_iter().fold(0u32, |acc, (_, crc, len)| {
            crc32c::crc32c_combine(acc, crc, len)
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_equals_sequential() {
        // Enough bytes to take the threaded path, in slices of awkward sizes.
        let data: Vec<u8> = (0..PARALLEL_MIN_BYTES + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let whole = crc32c::crc32c(&data);
        let slices: Vec<&[u8]> = data.chunks(100_003).flat_map(|c| c.chunks(7919)).collect();
        let produced = crc32c_of::<()>(data.len(), |sink| {
            slices.iter().for_each(|s| sink(s));
            Ok(())
        });
        assert_eq!(produced, Ok(whole));
        let small = crc32c_of::<()>(0, |sink| {
            slices.iter().for_each(|s| sink(s));
            Ok(())
        });
        assert_eq!(small, Ok(whole));
        // Tiny slices: the slice-count limit cuts batches.
        let tiny: Vec<&[u8]> = data[..300_000].chunks(3).collect();
        let produced = crc32c_of::<()>(usize::MAX, |sink| {
            tiny.iter().for_each(|s| sink(s));
            Ok(())
        });
        assert_eq!(produced, Ok(crc32c::crc32c(&data[..300_000])));
    }

    #[test]
    fn producer_error_is_passed_through() {
        assert_eq!(
            crc32c_of(usize::MAX, |sink| {
                sink(b"abc");
                Err("boom")
            }),
            Err("boom")
        );
    }
}
