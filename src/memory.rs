//! The allocator's settings for a mamori process.

/// Keeps freed large buffers in the heap for the next request instead of handing them back to
/// the kernel at once.
///
/// By default glibc maps a buffer above 128 KiB on its own and unmaps it when freed, and gives
/// the top of the heap back once 128 KiB of it are free: redacting a 1 MB text (its folded view,
/// offset map and output) then touched fresh pages on every call, 250 000 page faults a run of
/// the redaction benchmark, a tenth of its time on a virtual machine whose free memory goes back
/// to the host (docs/BENCHMARKS.md). Here buffers up to 8 MiB come from the heap and each arena
/// keeps up to 16 MiB free (as few as a 1 MB text needs: the same page faults as 32 and 64, and a
/// bound on what a busy gateway holds); `serve` still returns free memory to the kernel whenever
/// it has been idle for a second, and the log once it is idle ([`release_free`]). Call it before
/// any thread starts.
pub fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// Returns the heap's free pages to the system (`malloc_trim`): for moments when nothing is
/// going on, never per request (the pages would only be faulted back in).
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
