//! Memory planning for CPU programs, and a pool of large buffers.
//!
//! The plan gives each temporary buffer the step that writes it and the last step that reads
//! it; the executor allocates a buffer just before its step and releases it right after its
//! last reader, so a later temporary reuses its storage. The plan's `peak_bytes` is the most
//! temporary memory live at once (what the program needs); `total_bytes` what it would need
//! with no reuse.
//!
//! Large buffers released by a run, or by a tensor that is dropped, go to a small process-wide
//! pool; the next allocation of the same dtype and a similar size takes one from there instead
//! of asking the system for fresh (and page-faulting) memory. A pooled buffer's old contents
//! are never observed: every step writes all of its output.

use std::sync::Mutex;
use tenjit_ir::kernel::{BufferKind, Program};
use tenjit_ir::{DType, Data};

/// When each temporary buffer is written and last read, and the memory that implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// For each buffer: the step after which it is no longer needed (`None` for inputs and
    /// for the program's outputs, which outlive the run).
    pub release_after: Vec<Option<usize>>,
    /// Bytes of temporaries live at once, at most.
    pub peak_bytes: usize,
    /// Bytes of all temporaries together (the footprint without reuse).
    pub total_bytes: usize,
}

pub use tenjit_ir::kernel::schedule::step_buffers;

/// Plans `program`'s temporaries.
pub fn plan(program: &Program) -> MemoryPlan {
    let n = program.buffers.len();
    let mut last = vec![None; n];
    let mut first = vec![None; n];
    for (s, step) in program.steps.iter().enumerate() {
        let (reads, writes) = step_buffers(step);
        for b in reads.into_iter().chain(writes.iter().copied()) {
            last[b] = Some(s);
        }
        for b in writes {
            first[b].get_or_insert(s);
        }
    }
    let bytes = |b: usize| {
        let ty = &program.buffers[b].ty;
        ty.shape.numel() * ty.dtype.size_bytes()
    };
    // A row group's local buffers are never allocated in full (each thread keeps a block of
    // their rows), so they are not counted here.
    let mut temp: Vec<bool> = program.buffers.iter().map(|b| b.kind == BufferKind::Temp).collect();
    for g in &program.groups {
        for &b in &g.local {
            temp[b] = false;
        }
    }
    let release_after: Vec<Option<usize>> =
        (0..n).map(|b| if temp[b] && !program.outputs.contains(&b) { last[b] } else { None }).collect();
    // The bytes live at step `s`: those of every temp written at or before `s` and not yet
    // released before it, summed by a sweep over allocation and release events.
    let steps = program.steps.len();
    let (mut born, mut freed) = (vec![0usize; steps + 1], vec![0usize; steps + 1]);
    for b in (0..n).filter(|&b| temp[b]) {
        if let Some(f) = first[b] {
            born[f] += bytes(b);
            if let Some(r) = release_after[b] {
                freed[r + 1] += bytes(b);
            }
        }
    }
    let (mut live, mut peak) = (0usize, 0usize);
    for s in 0..steps {
        live = live + born[s] - freed[s];
        peak = peak.max(live);
    }
    let total_bytes = (0..n).filter(|&b| temp[b]).map(bytes).sum();
    MemoryPlan { release_after, peak_bytes: peak, total_bytes }
}

/// Buffers smaller than this are not pooled: the allocator serves them well. Above it, a
/// fresh buffer is zeroed by the allocator (`memset`, about 3% of a W8 training step when the
/// bound was 1 MiB and its `[12, 64, 128]` activations were not pooled), a pooled one is not.
const POOL_MIN_BYTES: usize = 64 << 10;
/// The pool holds at most this many bytes.
const POOL_MAX_BYTES: usize = 1 << 30;

struct Pool {
    free: Vec<Data>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { free: Vec::new(), bytes: 0 });

fn capacity_bytes(d: &Data) -> usize {
    match d {
        Data::Bool(v) => v.capacity(),
        Data::I32(v) => v.capacity() * 4,
        Data::I64(v) => v.capacity() * 8,
        Data::F16(v) => v.capacity() * 2,
        Data::BF16(v) => v.capacity() * 2,
        Data::F32(v) => v.capacity() * 4,
        Data::F64(v) => v.capacity() * 8,
    }
}

fn capacity(d: &Data) -> usize {
    capacity_bytes(d) / d.dtype().size_bytes()
}

/// Storage for `n` elements of `dtype`: a pooled buffer of a close size when there is one,
/// else a new one. The contents are unspecified (the caller overwrites all of them). Memory
/// the system refuses is an error, not an abort.
pub fn allocate(dtype: DType, n: usize) -> Result<Data, AllocError> {
    if n.saturating_mul(dtype.size_bytes()) >= POOL_MIN_BYTES {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let fit = pool.free.iter().position(|d| d.dtype() == dtype && (n..=2 * n).contains(&capacity(d)));
        if let Some(i) = fit {
            let mut d = pool.free.swap_remove(i);
            pool.bytes -= capacity_bytes(&d);
            resize(&mut d, n);
            return Ok(d);
        }
    }
    let err = || AllocError { dtype, elements: n };
    Ok(match dtype {
        DType::Bool => Data::Bool(zeroed(n).ok_or_else(err)?),
        DType::I32 => Data::I32(zeroed(n).ok_or_else(err)?),
        DType::I64 => Data::I64(zeroed(n).ok_or_else(err)?),
        DType::F16 => Data::F16(zeroed(n).ok_or_else(err)?),
        DType::BF16 => Data::BF16(zeroed(n).ok_or_else(err)?),
        DType::F32 => Data::F32(zeroed(n).ok_or_else(err)?),
        DType::F64 => Data::F64(zeroed(n).ok_or_else(err)?),
    })
}

/// The system refused memory for a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// The buffer's element type.
    pub dtype: DType,
    /// Its number of elements.
    pub elements: usize,
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.elements as f64 * self.dtype.size_bytes() as f64;
        let (value, unit) = [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)]
            .iter()
            .rev()
            .find(|(_, u)| bytes >= *u as f64)
            .map_or((bytes, "bytes"), |(name, u)| (bytes / *u as f64, *name));
        write!(
            f,
            "out of memory: cannot allocate {} {} elements ({value:.1} {unit})",
            self.elements, self.dtype
        )
    }
}

impl std::error::Error for AllocError {}

/// The element types whose all-zero bytes are a value: `false`, `0`, `0.0`.
trait ZeroIsValid: Copy {}

impl ZeroIsValid for bool {}
impl ZeroIsValid for i32 {}
impl ZeroIsValid for i64 {}
impl ZeroIsValid for half::f16 {}
impl ZeroIsValid for half::bf16 {}
impl ZeroIsValid for f32 {}
impl ZeroIsValid for f64 {}

/// `n` zeros of `T` (`false`, `0` or `0.0`), or `None` when the system refuses the memory.
/// `vec![0; n]` would abort the process instead; this keeps its speed, since fresh zeroed pages
/// from the system need no writing.
fn zeroed<T: ZeroIsValid>(n: usize) -> Option<Vec<T>> {
    if n == 0 || std::mem::size_of::<T>() == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: `layout` has a nonzero size (n > 0 and T is not zero-sized). The pointer, when
    // not null, comes from the global allocator with exactly `T`'s alignment and `n` elements'
    // size, which is what `Vec::from_raw_parts` needs for capacity `n`, and all of its bytes
    // are zero, a valid value of `T` (`ZeroIsValid`), so length `n` is initialized.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if !ptr.is_null() {
            huge_pages(ptr.cast(), layout.size());
        }
        (!ptr.is_null()).then(|| Vec::from_raw_parts(ptr, n, n))
    }
}

/// Buffers of at least this many bytes ask for transparent huge pages (NumPy's bound).
const HUGE_MIN_BYTES: usize = 4 << 20;

/// Asks Linux to back the whole 2 MiB pages inside the fresh allocation at `ptr` of `bytes`
/// with transparent huge pages (`madvise(MADV_HUGEPAGE)`, which the kernel's default `madvise`
/// mode requires), before anything touches them: a large buffer then takes one TLB entry per
/// 2 MiB instead of per 4 KiB. A streaming read of the 64 MiB W2 matrix went from 2.6–3.6 ms
/// to 1.8–2.2 ms on the 2-core KVM guest of `BENCHMARKS.md` (nested paging makes a TLB miss
/// dear), and NumPy does the same for its arrays, which is what torch's tensors made with
/// `from_numpy` read. A hint only: where the kernel refuses it, or elsewhere, nothing changes.
fn huge_pages(ptr: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < HUGE_MIN_BYTES {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if start < end {
        #[cfg(target_os = "linux")]
        {
            extern "C" {
                fn madvise(
                    addr: *mut std::ffi::c_void,
                    len: usize,
                    advice: std::ffi::c_int,
                ) -> std::ffi::c_int;
            }
            const MADV_HUGEPAGE: std::ffi::c_int = 14;
            // SAFETY: `start..end` lies inside the allocation just made (its 2 MiB-aligned
            // interior), which this process owns and nothing has touched yet; the advice only
            // changes how the kernel backs those pages, never their contents (zeros), and its
            // result (an error where huge pages are unsupported) is ignored.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
}

fn resize(d: &mut Data, n: usize) {
    match d {
        Data::Bool(v) => v.resize(n, false),
        Data::I32(v) => v.resize(n, 0),
        Data::I64(v) => v.resize(n, 0),
        Data::F16(v) => v.resize(n, half::f16::ZERO),
        Data::BF16(v) => v.resize(n, half::bf16::ZERO),
        Data::F32(v) => v.resize(n, 0.0),
        Data::F64(v) => v.resize(n, 0.0),
    }
}

/// Gives storage back for reuse (small buffers, and any beyond the pool's cap, are freed).
pub fn release(d: Data) {
    let bytes = capacity_bytes(&d);
    if bytes < POOL_MIN_BYTES {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    while pool.bytes + bytes > POOL_MAX_BYTES && !pool.free.is_empty() {
        let old = pool.free.remove(0);
        pool.bytes -= capacity_bytes(&old);
    }
    if pool.bytes + bytes <= POOL_MAX_BYTES {
        pool.bytes += bytes;
        pool.free.push(d);
    }
}
