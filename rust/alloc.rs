//! Fallible allocation: a buffer the machine cannot hold is an error the caller reports, never an abort.
//!
//! Every buffer sized by a caller's argument goes through here: the size in bytes is computed with checked
//! arithmetic, refused above the memory available (a request only the OOM killer could meet), and
//! reserved with `try_reserve_exact`, whose failure is returned instead of aborting the process.

use std::fmt;

/// A buffer that cannot be allocated, and what it was for (naming the argument that sized it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocError {
    /// What the memory is for, naming the argument that sized it: "n_weights=1099511627776 (the sign counters)".
    pub what: String,
    /// Bytes requested; `None` when the size does not fit in a usize.
    pub bytes: Option<usize>,
    /// The memory available when the request was refused for being larger.
    pub available: Option<u64>,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = &self.what;
        match (self.bytes, self.available) {
            (None, _) => write!(f, "{what} needs more than 2**64 bytes of memory"),
            (Some(bytes), Some(available)) => {
                write!(f, "{what} needs {bytes} bytes of memory, more than the {available} bytes available")
            }
            (Some(bytes), None) => write!(f, "{what} needs {bytes} bytes of memory, which could not be allocated"),
        }
    }
}

impl std::error::Error for AllocError {}

/// Requests from this size on are compared with the memory available; smaller ones only with the allocator.
const CHECK_FROM: usize = 1 << 26;

/// Bytes of memory this process can still use, read now: Linux's MemAvailable, or the room left under a
/// cgroup (v2) limit when that is smaller; `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    let read = |path: &str| std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .map(|max| max.saturating_sub(read("/sys/fs/cgroup/memory.current").unwrap_or(0)));
    [meminfo, cgroup].into_iter().flatten().min()
}

/// Bytes of `len` values of `T` (`None`: a length that overflowed), refused when they overflow or exceed the
/// memory available.
pub fn check<T>(len: Option<usize>, what: impl FnOnce() -> String) -> Result<usize, AllocError> {
    let bytes = len.and_then(|n| n.checked_mul(std::mem::size_of::<T>())).filter(|&b| b <= isize::MAX as usize);
    let Some(bytes) = bytes else { return Err(AllocError { what: what(), bytes: None, available: None }) };
    if bytes >= CHECK_FROM {
        if let Some(available) = available_memory().filter(|&a| bytes as u64 > a) {
            return Err(AllocError { what: what(), bytes: Some(bytes), available: Some(available) });
        }
    }
    Ok(bytes)
}

/// An empty vector with room for exactly `len` values (`None`: a length that overflowed), or why not.
pub fn with_capacity<T>(len: Option<usize>, what: impl Fn() -> String) -> Result<Vec<T>, AllocError> {
    let bytes = check::<T>(len, &what)?;
    let mut vec = Vec::new();
    match vec.try_reserve_exact(len.unwrap_or(0)) {
        Ok(()) => Ok(vec),
        Err(_) => Err(AllocError { what: what(), bytes: Some(bytes), available: None }),
    }
}

/// `len` copies of `value` (`None`: a length that overflowed), or why they cannot be allocated.
pub fn filled<T: Clone>(len: Option<usize>, value: T, what: impl Fn() -> String) -> Result<Vec<T>, AllocError> {
    let mut vec = with_capacity(len, what)?;
    vec.resize(len.unwrap_or(0), value);
    Ok(vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_succeed() {
        assert_eq!(filled(Some(5), 7u32, || "x".into()).unwrap(), vec![7; 5]);
        assert!(with_capacity::<u64>(Some(0), || "x".into()).unwrap().is_empty());
        assert!(available_memory().unwrap_or(u64::MAX) > 1 << 20);
    }

    #[test]
    fn absurd_requests_are_errors_naming_what_and_the_bytes() {
        let e = filled(Some(1 << 60), 0u32, || "n=2**60 (counters)".into()).unwrap_err();
        assert_eq!(e.bytes, Some(1 << 62));
        assert!(e.to_string().starts_with("n=2**60 (counters) needs 4611686018427387904 bytes"), "{e}");
        assert!(e.available.is_some());
        let e = with_capacity::<u64>(usize::MAX.checked_mul(2), || "m".into()).unwrap_err();
        assert_eq!(e.bytes, None);
        let e = with_capacity::<u64>(Some(usize::MAX), || "m".into()).unwrap_err();
        assert_eq!((e.bytes, e.to_string()), (None, "m needs more than 2**64 bytes of memory".into()));
    }
}
