//! Finding NVRTC and compiling CUDA C to PTX with it, through cudarc's `nvrtc` module.
//!
//! # Finding the library
//!
//! cudarc opens `libnvrtc.so*` by bare name (so the dynamic loader searches
//! `LD_LIBRARY_PATH` and the system's library directories) and panics when it finds none.
//! tenjit instead looks, in order, in
//!
//! 1. `$TENJIT_CUDA_TOOLS` (where `scripts/setup-cuda-tools.sh` installs when it is set),
//! 2. the setup script's default directory, `~/.cache/tenjit/cuda-tools`,
//!
//! for `nvidia/cuda_nvrtc/lib/libnvrtc.so.12` (the layout of the `nvidia-cuda-nvrtc-cu12`
//! wheel), and loads the first one found by its full path with `RTLD_NOW | RTLD_GLOBAL`. The
//! dynamic loader then answers cudarc's later `dlopen("libnvrtc.so.12")` with that already
//! loaded library (it matches a loaded object's `DT_SONAME`), so no `LD_LIBRARY_PATH` is
//! needed. [`Nvrtc::load`] checks that this happened: it compares the address of
//! `nvrtcVersion` in the preloaded library with the one cudarc resolved, and reports the
//! library cudarc really uses ([`Nvrtc::library`]). (A `libnvrtc.so` on the loader's search
//! path would still win, as cudarc tries that name first; then the system NVRTC is used, and
//! the version in the cache key is that one's.)
//!
//! 3. Failing both, the system: whatever cudarc's own search finds.
//!
//! When nothing is found, [`Nvrtc::load`] returns [`NvrtcError::NotFound`], whose message says
//! to run `scripts/setup-cuda-tools.sh`. Nothing here panics on a missing library: cudarc is
//! only called once the library is known to be loadable.
//!
//! # Options
//!
//! Every compile passes [`options`]: the virtual architecture (`compute_80`, `compute_90`)
//! and `--fmad=false` (generated code already avoids contraction by using `__fmul_rn`; the
//! flag keeps hand-written helpers exact too). The options and the NVRTC version are part of
//! the PTX cache key ([`crate::backend::cuda::ptx_cache`]).

use super::ptx_cache::{CacheKey, PtxCache};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The NVRTC library's file name in the PyPI wheel.
pub const LIBRARY: &str = "libnvrtc.so.12";

/// Where the library lies under a tools directory.
pub const LIBRARY_SUBDIR: &str = "nvidia/cuda_nvrtc/lib";

/// Where `ptxas` lies under a tools directory (the `nvidia-cuda-nvcc-cu12` wheel).
pub const PTXAS_SUBDIR: &str = "nvidia/cuda_nvcc/bin";

/// A virtual GPU architecture to compile for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Ampere (A100): `compute_80`, assembled for `sm_80`.
    Sm80,
    /// Hopper (H100, H200): `compute_90`, assembled for `sm_90`.
    Sm90,
}

impl Arch {
    /// Both architectures.
    pub const ALL: [Arch; 2] = [Arch::Sm80, Arch::Sm90];

    /// The virtual architecture NVRTC compiles for (`compute_90`).
    pub fn compute(self) -> &'static str {
        match self {
            Arch::Sm80 => "compute_80",
            Arch::Sm90 => "compute_90",
        }
    }

    /// The real architecture `ptxas` assembles for (`sm_90`).
    pub fn sm(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
        }
    }

    /// The architecture of a device of compute capability `major.minor`: the newest one here
    /// it can run (PTX is forward compatible), or `None` for devices older than 8.0.
    pub fn for_capability(major: i32, minor: i32) -> Option<Arch> {
        match (major, minor) {
            (m, _) if m >= 9 => Some(Arch::Sm90),
            (8, _) => Some(Arch::Sm80),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.compute())
    }
}

/// Why NVRTC could not be used or could not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvrtcError {
    /// No NVRTC library was found.
    NotFound {
        /// The paths tried before the system's search.
        searched: Vec<PathBuf>,
    },
    /// A library was found but could not be loaded or used.
    Load {
        /// The library.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The source cannot be given to NVRTC (it contains a NUL byte).
    InvalidSource,
    /// NVRTC rejected the source: its log, and the source with line numbers.
    Compile {
        /// The architecture compiled for.
        arch: Arch,
        /// NVRTC's log.
        log: String,
        /// The source compiled.
        source: String,
    },
    /// Another NVRTC failure.
    Api(String),
}

impl fmt::Display for NvrtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvrtcError::NotFound { searched } => {
                write!(f, "NVRTC ({LIBRARY}) was not found; run `scripts/setup-cuda-tools.sh` to install it (or set TENJIT_CUDA_TOOLS to the directory it installed into). Searched: ")?;
                for p in searched {
                    write!(f, "{}, ", p.display())?;
                }
                write!(f, "and the system's library path")
            }
            NvrtcError::Load { path, message } => write!(
                f,
                "NVRTC at {} could not be loaded: {message}; run `scripts/setup-cuda-tools.sh` to reinstall it",
                path.display()
            ),
            NvrtcError::InvalidSource => write!(f, "the CUDA C source contains a NUL byte"),
            NvrtcError::Compile { arch, log, source } => {
                writeln!(f, "NVRTC could not compile the generated CUDA C for {arch}:")?;
                writeln!(f, "{}", log.trim_end())?;
                writeln!(f, "---- source ----")?;
                for (i, line) in source.lines().enumerate() {
                    writeln!(f, "{:5} | {line}", i + 1)?;
                }
                Ok(())
            }
            NvrtcError::Api(m) => write!(f, "NVRTC: {m}"),
        }
    }
}

impl std::error::Error for NvrtcError {}

/// The tools directories searched, in order: `$TENJIT_CUDA_TOOLS`, then the setup script's
/// default `~/.cache/tenjit/cuda-tools`.
pub fn tools_dirs() -> Vec<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut dirs = Vec::new();
    if let Some(d) = var("TENJIT_CUDA_TOOLS") {
        dirs.push(d);
    }
    if let Some(home) = var("HOME") {
        dirs.push(home.join(".cache").join("tenjit").join("cuda-tools"));
    }
    dirs
}

/// The `ptxas` of the first tools directory that has one, else one on `PATH`.
pub fn find_ptxas() -> Option<PathBuf> {
    let in_tools = tools_dirs().into_iter().map(|d| d.join(PTXAS_SUBDIR).join("ptxas")).find(|p| p.is_file());
    in_tools.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("ptxas")).find(|p| p.is_file())
    })
}

/// The NVRTC options of a compile for `arch` (without the architecture, which cudarc adds).
pub fn options(_arch: Arch) -> Vec<String> {
    vec!["--fmad=false".to_string()]
}

/// A loaded NVRTC.
#[derive(Debug)]
pub struct Nvrtc {
    library: Option<PathBuf>,
    version: (i32, i32),
    cache: Option<PtxCache>,
}

/// The NVRTC of this process, once loaded.
static LOADED: Mutex<Option<&'static Nvrtc>> = Mutex::new(None);

impl Nvrtc {
    /// Loads NVRTC (once per process; a failure is retried on the next call, so running the
    /// setup script fixes a running process too) as the module doc describes.
    pub fn load() -> Result<&'static Nvrtc, NvrtcError> {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = *loaded {
            return Ok(n);
        }
        let n: &'static Nvrtc = Box::leak(Box::new(load()?));
        *loaded = Some(n);
        Ok(n)
    }

    /// The library cudarc calls: the tools directory's, or `None` when it is the system's.
    pub fn library(&self) -> Option<&Path> {
        self.library.as_deref()
    }

    /// NVRTC's version, `(major, minor)`.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Compiles `source` for `arch` to PTX text, without the cache.
    pub fn compile(&self, source: &str, arch: Arch) -> Result<String, NvrtcError> {
        use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
        if source.contains('\0') {
            return Err(NvrtcError::InvalidSource);
        }
        let opts =
            CompileOptions { arch: Some(arch.compute()), options: options(arch), ..Default::default() };
        match compile_ptx_with_opts(source, opts) {
            Ok(ptx) => match ptx.as_bytes() {
                Some(bytes) => {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    String::from_utf8(bytes[..end].to_vec())
                        .map_err(|e| NvrtcError::Api(format!("PTX is not UTF-8: {e}")))
                }
                None => Err(NvrtcError::Api("NVRTC returned no PTX image".into())),
            },
            Err(CompileError::CompileError { log, .. }) => Err(NvrtcError::Compile {
                arch,
                log: log.to_string_lossy().into_owned(),
                source: source.to_string(),
            }),
            Err(e) => Err(NvrtcError::Api(e.to_string())),
        }
    }

    /// Compiles `source` for `arch`, through the PTX disk cache when there is one (a cache
    /// that cannot be written only costs the next process a compile).
    pub fn compile_cached(&self, source: &str, arch: Arch) -> Result<String, NvrtcError> {
        let Some(cache) = &self.cache else { return self.compile(source, arch) };
        let key = CacheKey::new(source, arch.compute(), &options(arch), self.version);
        if let Some(ptx) = cache.get(key) {
            return Ok(ptx);
        }
        let ptx = self.compile(source, arch)?;
        let _ = cache.put(key, &ptx);
        Ok(ptx)
    }
}

fn load() -> Result<Nvrtc, NvrtcError> {
    let searched: Vec<PathBuf> =
        tools_dirs().into_iter().map(|d| d.join(LIBRARY_SUBDIR).join(LIBRARY)).collect();
    let mut preloaded = None;
    if let Some(path) = searched.iter().find(|p| p.is_file()) {
        preloaded = Some((path.clone(), preload(path)?));
    }
    // SAFETY: `is_culib_present` only dlopens and closes candidate libraries by name.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(match preloaded {
            Some((path, _)) => {
                NvrtcError::Load { path, message: "loaded, but cudarc could not open it by name".into() }
            }
            None => NvrtcError::NotFound { searched },
        });
    }
    // SAFETY: cudarc's library is present (checked just above), so `culib` does not panic;
    // the symbol is only compared by address, never called through this pointer.
    let used = unsafe {
        cudarc::nvrtc::sys::culib()
            .get::<unsafe extern "C" fn(*mut i32, *mut i32) -> i32>(b"nvrtcVersion\0")
            .map(|s| *s as usize)
            .ok()
    };
    let library = match preloaded {
        Some((path, ours)) if used.is_some() && used == ours => Some(path),
        _ => None,
    };
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loaded; `nvrtcVersion` writes two ints through valid pointers.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(NvrtcError::Api(format!("nvrtcVersion failed: {r:?}")));
    }
    Ok(Nvrtc { library, version: (major, minor), cache: PtxCache::open_default() })
}

/// Loads `path` globally and for good; returns the address of its `nvrtcVersion`.
#[cfg(unix)]
fn preload(path: &Path) -> Result<Option<usize>, NvrtcError> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    let err = |e: libloading::Error| NvrtcError::Load { path: path.to_path_buf(), message: e.to_string() };
    // SAFETY: loading NVRTC runs its initializers, which have no preconditions.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.map_err(err)?;
    // SAFETY: the symbol is only compared by address, never called through this pointer.
    let addr = unsafe { lib.get::<unsafe extern "C" fn(*mut i32, *mut i32) -> i32>(b"nvrtcVersion\0") }
        .map(|s| *s as usize)
        .ok();
    // The library stays loaded for the life of the process: cudarc calls into it.
    std::mem::forget(lib);
    Ok(addr)
}

/// Elsewhere the system's search is all there is.
#[cfg(not(unix))]
fn preload(_path: &Path) -> Result<Option<usize>, NvrtcError> {
    Ok(None)
}
