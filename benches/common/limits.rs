//! The machine's own limits on a reduction's bytes, measured next to W2: a read-only sweep and
//! a copy of the same buffer, written in Rust and run on as many threads as the CPU backend
//! uses, so a W2 reduction can be reported as a fraction of what the hardware reads.
//!
//! The read sweep sums with 4 independent 8-wide `f32` accumulators (32 adds in flight, enough
//! to hide the add latency): once as compiled for the baseline target (128-bit SSE vectors, the
//! width Cranelift emits) and, where the CPU has AVX2, once with 256-bit vectors, so the cost
//! of Cranelift's vector width shows as the difference of the two lines; a third sweep adds
//! software prefetches, which Cranelift cannot emit either. The copy is
//! `copy_from_slice` (the C library's `memcpy`) and counts the bytes read and written.
//!
//! The sweeps read a copy of the matrix in memory that asks Linux for transparent huge pages,
//! as tenjit's own large buffers (`backend::cpu::memory`) and NumPy's arrays (which torch's
//! `from_numpy` tensors share) do: on the KVM guest of `BENCHMARKS.md` 4 KiB pages cost a
//! streaming read about a third of its speed.

use super::Bench;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

/// How far ahead of the sum the prefetching sweep asks for data, in elements (2 KiB).
const PREFETCH_AHEAD: usize = 512;

/// Sums `x` with 4 independent accumulators of 8 lanes each; the compiler keeps each
/// accumulator in vector registers of whatever width the calling function is compiled for.
/// With `PREFETCH`, each step of 32 elements (two cache lines) first asks for the two lines
/// [`PREFETCH_AHEAD`] elements ahead (an instruction Cranelift has no way to emit).
#[inline(always)]
fn sum_8x4<const PREFETCH: bool>(x: &[f32]) -> f32 {
    let mut acc = [[0f32; 8]; 4];
    let chunks = x.chunks_exact(32);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        if PREFETCH {
            prefetch(c.as_ptr().wrapping_add(PREFETCH_AHEAD));
            prefetch(c.as_ptr().wrapping_add(PREFETCH_AHEAD + 16));
        }
        for (a, acc) in acc.iter_mut().enumerate() {
            for (l, v) in acc.iter_mut().enumerate() {
                *v += c[8 * a + l];
            }
        }
    }
    acc.iter().flatten().sum::<f32>() + tail
}

/// A hint to bring the cache line holding `p` into L1 (it never faults, whatever `p` is).
#[inline(always)]
fn prefetch(p: *const f32) {
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never dereferences `p`.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`sum_8x4`] compiled with 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_8x4_avx2(x: &[f32]) -> f32 {
    sum_8x4::<false>(x)
}

/// Runs `work(thread, threads)` on `threads` threads (this one and `threads - 1` workers that
/// live for the whole measurement, as the CPU backend's pool does) in each call of the timed
/// closure, and times it with `b.time`; returns the fastest run in seconds.
fn time_parallel(
    b: &mut Bench,
    id: &str,
    reps: usize,
    bytes: f64,
    work: &(dyn Fn(usize, usize) + Sync),
) -> Option<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Barrier::new(threads);
    let done = Barrier::new(threads);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 1..threads {
            let (start, done, stop) = (&start, &done, &stop);
            s.spawn(move || loop {
                start.wait();
                if stop.load(Ordering::Acquire) {
                    return;
                }
                work(t, threads);
                done.wait();
            });
        }
        let med = b.time_as(id, "", reps, Some(bytes), None, || {
            start.wait();
            work(0, threads);
            done.wait();
        });
        stop.store(true, Ordering::Release);
        start.wait();
        med.and(b.last_min)
    })
}

/// The `t`-th of `n` contiguous parts of `x`.
fn part<T>(x: &[T], t: usize, n: usize) -> &[T] {
    let len = x.len().div_ceil(n);
    &x[(t * len).min(x.len())..((t + 1) * len).min(x.len())]
}

/// Measures the read sweep and the copy of `x` (`{workload}.limit_*` lines, `W2.limit_read_128bit`)
/// and returns the read bandwidth of the fastest run in GB/s, the reference the workload's
/// lines are compared with.
pub fn measure(b: &mut Bench, workload: &str, x: &[f32]) -> Option<f64> {
    let copy = huge_copy(x);
    let x: &[f32] = &copy;
    let bytes = std::mem::size_of_val(x) as f64;
    let reps = 15;
    let read128 = time_parallel(b, &format!("{workload}.limit_read_128bit"), reps, bytes, &|t, n| {
        black_box(sum_8x4::<false>(black_box(part(x, t, n))));
    });
    let prefetched =
        time_parallel(b, &format!("{workload}.limit_read_128bit_prefetch"), reps, bytes, &|t, n| {
            black_box(sum_8x4::<true>(black_box(part(x, t, n))));
        });
    let mut best = match (read128, prefetched) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    };
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        let read256 = time_parallel(b, &format!("{workload}.limit_read_256bit"), reps, bytes, &|t, n| {
            // SAFETY: the CPU has AVX2 (checked just above).
            black_box(unsafe { sum_8x4_avx2(black_box(part(x, t, n))) });
        });
        best = match (best, read256) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        };
    }
    let dst: Vec<std::sync::Mutex<Vec<f32>>> = {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..threads).map(|t| std::sync::Mutex::new(part(x, t, threads).to_vec())).collect()
    };
    time_parallel(b, &format!("{workload}.limit_copy"), reps, 2.0 * bytes, &|t, n| {
        let mut d = dst[t].lock().unwrap_or_else(|e| e.into_inner());
        d.copy_from_slice(part(x, t, n));
        black_box(&mut *d);
    });
    best.map(|min| bytes / min / 1e9)
}

/// `x` copied into a fresh allocation whose whole 2 MiB pages were advised to be huge
/// (`madvise(MADV_HUGEPAGE)`) before the copy touched them.
fn huge_copy(x: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(x.len());
    const HUGE: usize = 2 << 20;
    let p = v.as_mut_ptr() as usize;
    let (start, end) = (p.next_multiple_of(HUGE), (p + std::mem::size_of_val(x)) / HUGE * HUGE);
    #[cfg(target_os = "linux")]
    if start < end {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: `start..end` lies inside `v`'s allocation, untouched so far; the advice
        // changes only how the pages are backed (14 is `MADV_HUGEPAGE`), and a refusal is
        // ignored.
        unsafe { madvise(start as *mut std::ffi::c_void, end - start, 14) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
    v.extend_from_slice(x);
    v
}
