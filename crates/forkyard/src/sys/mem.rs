//! Memory mapped by hand: anonymous shared memory, through which a `Pool`'s forked workers
//! report their progress to the parent.

use std::io;

/// Anonymous memory shared with the children forked after its creation (`MAP_SHARED`):
/// writes on either side are seen by the other, unlike the rest of a forked child's memory.
pub(crate) struct SharedMem {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl SharedMem {
    pub(crate) fn new(len: usize) -> io::Result<SharedMem> {
        // SAFETY: an anonymous shared mapping; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(SharedMem { ptr, len })
    }

    /// The `i`-th 32-bit slot, as an atomic (the mapping is page-aligned and zero-filled).
    pub(crate) fn slot(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        assert!((i + 1) * 4 <= self.len, "slot {i} is outside the shared mapping");
        // SAFETY: the slot lies inside the mapping (checked above), is 4-byte aligned (the
        // mapping is page-aligned), lives as long as `self`, and is only ever accessed
        // atomically.
        unsafe { &*self.ptr.as_ptr().add(i * 4).cast::<std::sync::atomic::AtomicU32>() }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we made; no reference into it outlives self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
