//! Progress of the long steps (resource export, writing and compressing, reading and
//! verifying), counted where the work happens and read by whoever shows it: a meter
//! is shared (`Arc`) and updated with relaxed atomics, so the blocking archive code
//! needs no callback.

use std::sync::atomic::{AtomicU64, Ordering};

/// Done and total (0: not known) of one step, in bytes or objects.
#[derive(Debug, Default)]
pub struct Meter {
    done: AtomicU64,
    total: AtomicU64,
}

impl Meter {
    /// How much is done, and the total (0 while not known).
    pub fn read(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Adds `n` to what is done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets what is done (a count kept elsewhere).
    pub fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    /// Sets the total.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }
}

/// A reader that counts what goes through it on a meter.
pub(crate) struct MeteredReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) meter: &'a Meter,
}

impl<R: std::io::Read> std::io::Read for MeteredReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metered_reader_counts_every_byte() {
        let m = Meter::default();
        m.set_total(10);
        let mut r = MeteredReader {
            inner: &b"0123456789"[..],
            meter: &m,
        };
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut out).unwrap();
        assert_eq!(m.read(), (10, 10));
    }
}
