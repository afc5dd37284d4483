//! Machine code shared between kernels of one structure.
//!
//! A model repeats itself: its layers lower to the same kernels over different buffers, and
//! an optimizer runs the same update over every parameter of a shape. [`canonical`] renames a
//! kernel's buffers to `0, 1, …` in the order it first touches them, so kernels that differ
//! only in which buffers they use become equal; [`Key`] is what the machine code of that form
//! depends on: the structure of its loop plan and its buffers' dtypes. The plan's numbers
//! (extents, nonzero offsets, strides other than 0 and 1) are runtime values of the size table
//! (`sizes.rs`) and the outer dim is a range the caller passes, so the key leaves them out:
//! kernels that differ only in their sizes (the rows of a batch, the positions of a context
//! that grows by one token a step, the `[heads, T, T]` scores of attention) run one function,
//! compiled once.
//! [`lookup`] finds code already compiled for a key anywhere in the process (the cache holds
//! weak references, so code lives as long as some executable uses it), and a compiled kernel
//! is then that code plus its map from local to program buffers.

use super::{plan, sizes, KernelFn};
use cranelift_jit::JITModule;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tenjit_ir::kernel::{BufId, Combine, IndexMap, Inst, InstId, Instr, Kernel};
use tenjit_ir::DType;

/// One compiled function and the JIT module that owns its memory (none for a hand-written
/// routine of `dense_sum`, which is part of this library).
pub(super) struct Code {
    pub(super) module: Option<JITModule>,
    pub(super) f: KernelFn,
}

// SAFETY: after `finalize_definitions` the module is never touched again except to free its
// memory on drop (which needs the last `Arc`, so no other thread can be running the code); the
// code itself is immutable and reentrant (it keeps no state but its stack and the buffers it
// is given), so calling it from several threads at once is sound.
unsafe impl Send for Code {}
// SAFETY: as above: `&Code` only gives access to the immutable function pointer.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: this is the last handle to the code (the `Arc` is being dropped), so none
            // of it is running and no pointer to it survives.
            unsafe { m.free_memory() };
        }
    }
}

/// What determines a kernel's machine code: its loop plan's structure (which canonical dims
/// are reduced, the loop shape, each map's stride classes and whether its offset is 0) and
/// its instructions without their index maps, with local buffer ids, and the buffers'
/// dtypes. The name, the reason, the origins, the buffers' shapes and every number of the
/// size table do not matter.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    reduced: Vec<bool>,
    shape: plan::Shape,
    empty: (bool, bool),
    combine: Option<Combine>,
    body: Vec<Instr>,
    value: Option<InstId>,
    epilogue: Vec<Instr>,
    stores: Vec<(BufId, InstId)>,
    maps: Vec<(bool, Vec<sizes::Class>)>,
    dtypes: Vec<DType>,
}

/// `kernel` with its buffers renamed `0, 1, …` in the order it first loads or stores them,
/// and the map from those local ids to the kernel's own.
pub(super) fn canonical(kernel: &Kernel) -> (Kernel, Vec<BufId>) {
    let mut map: Vec<BufId> = Vec::new();
    let mut local = |b: BufId| match map.iter().position(|&m| m == b) {
        Some(i) => i,
        None => {
            map.push(b);
            map.len() - 1
        }
    };
    let mut k = kernel.clone();
    for ins in k.body.iter_mut().chain(k.epilogue.iter_mut()) {
        if let Inst::Load { buf, .. } = &mut ins.inst {
            *buf = local(*buf);
        }
    }
    for s in &mut k.stores {
        s.buf = local(s.buf);
    }
    (k, map)
}

impl Key {
    /// The key of planned kernel `p` (in canonical form), whose local buffer `i` has dtype
    /// `dtypes[i]`.
    pub(super) fn new(p: &plan::Plan<'_>, dtypes: Vec<DType>) -> Key {
        let k = p.kernel;
        let unmapped = |list: &[Instr]| -> Vec<Instr> {
            list.iter()
                .map(|i| {
                    let mut i = i.clone();
                    if let Some(index) = i.inst.index_mut() {
                        *index = IndexMap::new(0, Vec::new());
                    }
                    i
                })
                .collect()
        };
        Key {
            reduced: p.reduced.clone(),
            shape: p.shape,
            empty: (p.empty, p.empty_reduce),
            combine: k.reduce.as_ref().map(|r| r.op),
            body: unmapped(&k.body),
            value: k.value,
            epilogue: unmapped(&k.epilogue),
            stores: k.stores.iter().map(|s| (s.buf, s.value)).collect(),
            maps: sizes::classes(p),
            dtypes,
        }
    }
}

/// Compiled code by key, process-wide.
fn cache() -> &'static Mutex<HashMap<Key, Weak<Code>>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<Key, Weak<Code>>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The code cached for `key`, if some executable still holds it.
pub(super) fn lookup(key: &Key) -> Option<Arc<Code>> {
    cache().lock().unwrap_or_else(|e| e.into_inner()).get(key).and_then(Weak::upgrade)
}

/// Caches `code` for `key`, dropping entries whose code is gone.
pub(super) fn insert(key: Key, code: &Arc<Code>) {
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= 1024 && c.len().is_power_of_two() {
        c.retain(|_, w| w.strong_count() > 0);
    }
    c.insert(key, Arc::downgrade(code));
}
