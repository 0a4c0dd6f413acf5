//! Fuzzes every decoder of untrusted bytes (`ibackup_tools::fuzz`, docs/SECURITY.md §6) with an
//! allocator that refuses any single allocation past `MAX_ALLOCATION`: a decoder that
//! believes a length field from its input would ask for gigabytes and fail here.
//!
//! `IBACKUP_FUZZ_INPUTS` sets the inputs per target (default 200,000: the short pass of the
//! test suite); `scripts/fuzz` runs 10 million each, in a release build.
//!
//! The one `unsafe` of the project is here: a `GlobalAlloc` cannot be written without it,
//! and it only passes each call on to the system allocator (docs/DECISIONS.md).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest single allocation a decoder may make from a fuzzed input (the inputs are
/// a few KiB; the largest legitimate plaintext, a chunk, is 4 MiB).
const MAX_ALLOCATION: usize = 64 << 20;

struct Bounded;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are noted.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`; `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

fn inputs() -> u64 {
    std::env::var("IBACKUP_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(200_000)
}

#[test]
fn every_decoder_refuses_mutated_input_without_panicking_or_overallocating() {
    // A panic inside a decoder is caught by the harness and reported with its input; the
    // default hook would print each one first.
    std::panic::set_hook(Box::new(|_| {}));
    let count = inputs();
    let mut failures = Vec::new();
    for (n, target) in ibackup_tools::fuzz::TARGETS.iter().enumerate() {
        let started = std::time::Instant::now();
        if let Err(failure) = ibackup_tools::fuzz::run(target, count, 0x1bac4 + n as u64) {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}.bin"));
            std::fs::write(&file, &failure.input).unwrap();
            failures.push(format!(
                "{target}: {} (input in {})",
                failure.message,
                file.display()
            ));
        }
        eprintln!(
            "fuzz {target}: {count} inputs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "decoders panicked:\n{}",
        failures.join("\n")
    );
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= MAX_ALLOCATION,
        "a decoder asked for {largest} bytes at once"
    );
}
