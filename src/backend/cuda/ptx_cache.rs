//! A disk cache of PTX: NVRTC takes 30–75 ms per module, so a program compiled once is not
//! compiled again by the next process.
//!
//! An entry is keyed by a 128-bit FNV-1a hash of everything that determines the PTX: the
//! CUDA C source, the target architecture, the NVRTC options and the NVRTC version
//! ([`CacheKey::new`]). It lives in `DIR/ptx/<key>.ptx`, where `DIR` is `TENJIT_CACHE_DIR`,
//! else `$XDG_CACHE_HOME/tenjit`, else `~/.cache/tenjit` ([`default_dir`]).
//!
//! What it keeps true: a reader never sees a partial entry (entries are written to a
//! temporary file in the same directory and renamed into place), and an entry that is
//! missing, unreadable, truncated or otherwise corrupt is a miss, never an error (each entry
//! carries its key, its length and a checksum of its text). Writes that fail are reported to
//! the caller, who may ignore them: the cache is an optimization.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The first line of every entry, naming the format.
const MAGIC: &str = "tenjit-ptx-cache v1";

/// A cache key: the hash of what determines a PTX text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(u128);

impl CacheKey {
    /// The key of compiling `source` for `arch` with `options` by NVRTC `version`.
    pub fn new(source: &str, arch: &str, options: &[String], version: (i32, i32)) -> CacheKey {
        let mut h = Fnv::new();
        // Each part is length-prefixed, so no two different inputs run together alike.
        h.part(source.as_bytes());
        h.part(arch.as_bytes());
        for o in options {
            h.part(o.as_bytes());
        }
        h.part(format!("{}.{}", version.0, version.1).as_bytes());
        CacheKey(h.finish())
    }

    /// The key as 32 hex digits (the entry's file stem).
    pub fn hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

/// 128-bit FNV-1a: stable across processes, platforms and Rust versions.
struct Fnv(u128);

impl Fnv {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    fn new() -> Fnv {
        Fnv(Fnv::OFFSET)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u128;
            self.0 = self.0.wrapping_mul(Fnv::PRIME);
        }
    }

    fn part(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

fn checksum(text: &str) -> u128 {
    let mut h = Fnv::new();
    h.bytes(text.as_bytes());
    h.finish()
}

/// The default cache directory: `TENJIT_CACHE_DIR`, else `$XDG_CACHE_HOME/tenjit`, else
/// `$HOME/.cache/tenjit`; `None` when none of them is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("TENJIT_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("tenjit")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("tenjit")))
}

/// A PTX cache in one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxCache {
    dir: PathBuf,
}

impl PtxCache {
    /// The cache under `root` (entries go to `root/ptx`; nothing is created until a write).
    pub fn new(root: impl Into<PathBuf>) -> PtxCache {
        PtxCache { dir: root.into().join("ptx") }
    }

    /// The cache in [`default_dir`], if there is one.
    pub fn open_default() -> Option<PtxCache> {
        default_dir().map(PtxCache::new)
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: CacheKey) -> PathBuf {
        self.dir.join(format!("{}.ptx", key.hex()))
    }

    /// The PTX stored under `key`, or `None` when there is no valid entry.
    pub fn get(&self, key: CacheKey) -> Option<String> {
        let text = fs::read_to_string(self.path(key)).ok()?;
        let (header, ptx) = text.split_once('\n')?;
        let mut fields = header.split(' ');
        let ok = fields.next() == Some("tenjit-ptx-cache")
            && fields.next() == Some("v1")
            && fields.next() == Some(key.hex().as_str())
            && fields.next().and_then(|n| n.parse::<usize>().ok()) == Some(ptx.len())
            && fields.next() == Some(format!("{:032x}", checksum(ptx)).as_str())
            && fields.next().is_none();
        ok.then(|| ptx.to_string())
    }

    /// Stores `ptx` under `key`, atomically: written to a temporary file, then renamed.
    pub fn put(&self, key: CacheKey, ptx: &str) -> io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            key.hex(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            write!(f, "{MAGIC} {} {} {:032x}\n{ptx}", key.hex(), ptx.len(), checksum(ptx))?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(key))
        };
        let result = write();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenjit-ptx-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_stored_entry_is_a_hit_and_anything_else_a_miss() {
        let root = scratch("hit");
        let cache = PtxCache::new(&root);
        let key = CacheKey::new("src", "compute_90", &["--fmad=false".into()], (12, 9));
        assert_eq!(cache.get(key), None);
        cache.put(key, ".version 8.8\n// ptx\n").unwrap();
        assert_eq!(cache.get(key).as_deref(), Some(".version 8.8\n// ptx\n"));
        // Each input of the key matters.
        for other in [
            CacheKey::new("src2", "compute_90", &["--fmad=false".into()], (12, 9)),
            CacheKey::new("src", "compute_80", &["--fmad=false".into()], (12, 9)),
            CacheKey::new("src", "compute_90", &[], (12, 9)),
            CacheKey::new("src", "compute_90", &["--fmad=false".into()], (12, 8)),
        ] {
            assert_ne!(other, key);
            assert_eq!(cache.get(other), None);
        }
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn corrupt_entries_are_misses() {
        let root = scratch("corrupt");
        let cache = PtxCache::new(&root);
        let key = CacheKey::new("src", "compute_80", &[], (12, 9));
        cache.put(key, "some ptx text").unwrap();
        let path = cache.path(key);
        let good = fs::read(&path).unwrap();
        let corruptions: Vec<Vec<u8>> = vec![
            good[..good.len() - 3].to_vec(),                                  // truncated
            [&good[..], b"more"].concat(),                                    // extended
            good.iter().map(|&b| if b == b'p' { b'q' } else { b }).collect(), // altered text
            vec![0xff, 0xfe, 0x00],                                           // not UTF-8
            Vec::new(),                                                       // empty
        ];
        for bad in corruptions {
            fs::write(&path, &bad).unwrap();
            assert_eq!(cache.get(key), None, "{:?}", String::from_utf8_lossy(&bad));
        }
        // A put over a corrupt entry repairs it.
        fs::write(&path, b"garbage").unwrap();
        cache.put(key, "some ptx text").unwrap();
        assert_eq!(cache.get(key).as_deref(), Some("some ptx text"));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn an_unwritable_cache_reports_the_write_and_misses() {
        let root = scratch("unwritable");
        fs::create_dir_all(&root).unwrap();
        // `root/ptx` is a file, so no entry can be created under it.
        fs::write(root.join("ptx"), b"").unwrap();
        let cache = PtxCache::new(&root);
        let key = CacheKey::new("src", "compute_80", &[], (12, 9));
        assert!(cache.put(key, "ptx").is_err());
        assert_eq!(cache.get(key), None);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn keys_are_stable() {
        // Pinned: a change of the hash would orphan every existing entry.
        let key = CacheKey::new("__global__ void k() {}", "compute_90", &["--fmad=false".into()], (12, 9));
        assert_eq!(key.hex(), "26b0d5d3463cdd3bb9477eb88649ce2b");
    }
}
