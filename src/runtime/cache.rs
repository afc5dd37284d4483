//! The executable cache: one map from (device, structure) to a compiled [`Executable`], bounded.
//!
//! A structure has two kinds of key. The realize path hashes the lazy tensor DAG itself
//! ([`Key::Lazy`]), so a hit builds no `ir::Graph`; `run_graph`, the CLI and `jit` hash the
//! graph ([`Key::Graph`], its `Graph::fingerprint`). A lazy key is an alias of the graph key
//! it was compiled under, so two DAGs that trace to one graph share one executable. The cache
//! also keeps the text of every graph it holds, for explaining later misses.
//!
//! The cache holds at most [`cache_capacity`] executables (default [`DEFAULT_CAPACITY`], set
//! with [`set_cache_capacity`]), over all devices together, so no workload can grow it without
//! end: compiling one more evicts the least recently used executable, with its aliases and its
//! text. An evicted structure that comes back is compiled again (and counted, and reported, as
//! a compilation).

use super::Executable;
use crate::device::Device;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The structure an executable was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A front end's fingerprint of the lazy DAG (ops, types, operands, roots; never data).
    Lazy(u128),
    /// An `ir::Graph`'s own fingerprint.
    Graph(u128),
}

/// How many executables the cache holds unless [`set_cache_capacity`] says otherwise: enough
/// for every step of a large model (forward, backward and optimizer graphs of each shape),
/// while a workload that makes a new structure per call (a bug, or a shape that varies) stays
/// bounded in memory.
pub const DEFAULT_CAPACITY: usize = 1024;

static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_CAPACITY);

/// Sets how many compiled executables the cache keeps (at least 1); the least recently used
/// ones beyond it are evicted now and as new ones are compiled.
///
/// ```
/// tenjit::set_cache_capacity(256);
/// assert_eq!(tenjit::cache_capacity(), 256);
/// # tenjit::set_cache_capacity(tenjit::runtime::cache::DEFAULT_CAPACITY);
/// ```
pub fn set_cache_capacity(n: usize) {
    CAPACITY.store(n.max(1), Ordering::Relaxed);
    locked().evict();
}

/// How many compiled executables the cache keeps at most.
pub fn cache_capacity() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}

/// How many compiled executables the cache holds now.
pub fn cached_executables() -> usize {
    locked().entries.keys().filter(|(_, k)| matches!(k, Key::Graph(_))).count()
}

struct Entry {
    exe: Arc<dyn Executable>,
    /// The graph's text, for a [`Key::Graph`] entry.
    text: Option<String>,
    /// The tick of the last lookup or insertion.
    used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(Device, Key), Entry>,
    tick: u64,
}

impl Cache {
    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Evicts least recently used executables (each with every key naming it) until at most
    /// the capacity remain. An executable's last use is the latest of its keys'.
    fn evict(&mut self) {
        let capacity = cache_capacity();
        let id = |e: &Entry| Arc::as_ptr(&e.exe) as *const ();
        let mut last_use: HashMap<*const (), u64> = HashMap::new();
        for e in self.entries.values() {
            let t = last_use.entry(id(e)).or_insert(0);
            *t = (*t).max(e.used);
        }
        // Each compiled executable has exactly one graph key.
        let mut graphs: Vec<(u64, *const ())> =
            self.entries.values().filter(|e| e.text.is_some()).map(|e| (last_use[&id(e)], id(e))).collect();
        if graphs.len() <= capacity {
            return;
        }
        // Ticks are distinct, so the order is total: the oldest first.
        graphs.sort_unstable_by_key(|&(t, _)| t);
        let victims: std::collections::HashSet<*const ()> =
            graphs[..graphs.len() - capacity].iter().map(|&(_, p)| p).collect();
        self.entries.retain(|_, e| !victims.contains(&id(e)));
    }
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn locked() -> std::sync::MutexGuard<'static, Cache> {
    cache().lock().unwrap_or_else(|p| p.into_inner())
}

/// The executable cached for `key` on `device` (a use, for the eviction order).
pub(crate) fn get(device: Device, key: Key) -> Option<Arc<dyn Executable>> {
    let mut cache = locked();
    let now = cache.touch();
    let entry = cache.entries.get_mut(&(device, key))?;
    entry.used = now;
    Some(entry.exe.clone())
}

/// Caches `exe`, just compiled on `device` from the graph of fingerprint `fingerprint` and
/// text `text`, evicting the least recently used executables beyond the capacity.
pub(crate) fn insert_compiled(device: Device, fingerprint: u128, text: String, exe: Arc<dyn Executable>) {
    let mut cache = locked();
    let used = cache.touch();
    cache.entries.insert((device, Key::Graph(fingerprint)), Entry { exe, text: Some(text), used });
    cache.evict();
}

/// Makes `alias` (a lazy key) name the executable `exe` on `device`, if it is still cached.
pub(crate) fn insert_alias(device: Device, alias: Key, exe: Arc<dyn Executable>) {
    let mut cache = locked();
    // A concurrent compilation may have evicted `exe` already: an alias must not keep it.
    if !cache.entries.values().any(|e| e.text.is_some() && Arc::ptr_eq(&e.exe, &exe)) {
        return;
    }
    let used = cache.touch();
    cache.entries.insert((device, alias), Entry { exe, text: None, used });
}

/// Calls `f` with the texts of the graphs cached for `device` (in no particular order).
pub(crate) fn with_texts<R>(device: Device, f: impl FnOnce(&[&String]) -> R) -> R {
    let cache = locked();
    let texts: Vec<&String> = cache
        .entries
        .iter()
        .filter(|((d, _), _)| *d == device)
        .filter_map(|(_, e)| e.text.as_ref())
        .collect();
    f(&texts)
}
