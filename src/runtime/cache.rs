//! The executable cache: one map from (device, structure) to a compiled [`Executable`].
//!
//! A structure has two kinds of key. The realize path hashes the lazy tensor DAG itself
//! ([`Key::Lazy`]), so a hit builds no `ir::Graph`; `run_graph`, the CLI and `jit` hash the
//! graph ([`Key::Graph`], its `Graph::fingerprint`). A lazy key is an alias of the graph key
//! it was compiled under, so two DAGs that trace to one graph share one executable. The cache
//! also keeps the text of every graph it compiled, per device, for explaining later misses.

use super::Executable;
use crate::device::Device;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The structure an executable was compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A front end's fingerprint of the lazy DAG (ops, types, operands, roots; never data).
    Lazy(u128),
    /// An `ir::Graph`'s own fingerprint.
    Graph(u128),
}

#[derive(Default)]
struct Cache {
    executables: HashMap<(Device, Key), Arc<dyn Executable>>,
    /// The text of each graph compiled, per device.
    texts: HashMap<Device, Vec<String>>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn locked() -> std::sync::MutexGuard<'static, Cache> {
    cache().lock().unwrap_or_else(|p| p.into_inner())
}

/// The executable cached for `key` on `device`.
pub(crate) fn get(device: Device, key: Key) -> Option<Arc<dyn Executable>> {
    locked().executables.get(&(device, key)).cloned()
}

/// Caches `exe`, just compiled on `device` from the graph of fingerprint `fingerprint` and
/// text `text`.
pub(crate) fn insert_compiled(device: Device, fingerprint: u128, text: String, exe: Arc<dyn Executable>) {
    let mut cache = locked();
    cache.executables.insert((device, Key::Graph(fingerprint)), exe);
    cache.texts.entry(device).or_default().push(text);
}

/// Makes `alias` (a lazy key) name the executable `exe` on `device`.
pub(crate) fn insert_alias(device: Device, alias: Key, exe: Arc<dyn Executable>) {
    locked().executables.insert((device, alias), exe);
}

/// Calls `f` with the texts of the graphs compiled on `device` so far.
pub(crate) fn with_texts<R>(device: Device, f: impl FnOnce(&[String]) -> R) -> R {
    let cache = locked();
    f(cache.texts.get(&device).map(Vec::as_slice).unwrap_or(&[]))
}
