//! CUDA devices: discovery, one context and stream per device, and buffers in device memory.
//!
//! # Discovery never panics
//!
//! cudarc loads `libcuda.so` on first use and panics when it is missing, so nothing here calls
//! the driver before [`cudarc::driver::sys::is_culib_present`] has said the library is
//! loadable; the probe's driver calls also run under `catch_unwind`, so a driver too old for
//! a symbol cudarc asks for is an error, not a crash. The answer (the device count, or why
//! there are no devices) is computed once per process ([`is_available`], [`device_count`]).
//!
//! # One context and one stream per device
//!
//! Each device ordinal gets, on first use, the device's primary context and one non-blocking
//! stream, kept for the life of the process. Every allocation, copy, kernel launch
//! and cuBLAS call of tenjit on that device is issued on that stream, so stream order alone
//! orders them: cudarc's per-buffer event tracking (two events per allocation, an event record
//! per kernel argument) is switched off for these contexts.
//!
//! # Device buffers
//!
//! A [`DeviceBuffer`] is a dense row-major tensor in device memory: its [`TensorType`], its
//! device ordinal and the allocation. Bool elements are one byte, 0 or 1 (`unsigned char` in
//! the generated CUDA C). An empty tensor still owns a one-element allocation (the driver
//! rejects zero-byte allocations), which is never read. [`upload`] and [`download`] copy
//! between a host [`Buffer`] and the device and return once the copy is complete.

use super::codegen::{CodegenError, DeviceFailure};
use super::nvrtc::NvrtcError;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DriverError};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use tenjit_ir::{Buffer, DType, Data, TensorType};

/// Why something on a CUDA device could not be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaError {
    /// `libcuda.so` cannot be loaded: no NVIDIA driver on this machine.
    NoDriver,
    /// The driver library loaded but could not be initialized or queried.
    DriverUnusable {
        /// What went wrong.
        message: String,
    },
    /// The device ordinal asked for does not exist.
    NoDevice {
        /// The ordinal asked for.
        device: usize,
        /// How many devices there are.
        count: usize,
    },
    /// A driver call failed.
    Driver {
        /// The call (or the operation) that failed, e.g. `cuMemAllocAsync (allocating b3)`.
        call: String,
        /// The driver's error name, e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
        code: String,
        /// The driver's description of the error.
        message: String,
    },
    /// A cuBLAS call failed.
    Blas {
        /// The call that failed.
        call: String,
        /// The cuBLAS status, e.g. `CUBLAS_STATUS_INVALID_VALUE`.
        status: String,
    },
    /// The device is older than any architecture the code generator targets.
    UnsupportedDevice {
        /// The device ordinal.
        device: usize,
        /// Its compute capability.
        capability: (i32, i32),
    },
    /// The program could not be rendered to CUDA C.
    Codegen(CodegenError),
    /// NVRTC could not be loaded or could not compile the rendered program.
    Nvrtc(NvrtcError),
    /// A program input is missing.
    MissingInput {
        /// The input's index.
        index: usize,
        /// How many inputs were given.
        given: usize,
    },
    /// A program input has another type than the program was compiled for.
    InputType {
        /// The input's index.
        index: usize,
        /// The type the program was compiled for (boxed to keep the error small).
        expected: Box<TensorType>,
        /// The type of the buffer given.
        got: Box<TensorType>,
    },
    /// A program input lives on another device than the program runs on.
    InputDevice {
        /// The input's index.
        index: usize,
        /// The program's device.
        expected: usize,
        /// The buffer's device.
        got: usize,
    },
    /// A kernel reported a failure through its error word (integer division by zero, an
    /// index out of range); the message is the one the CPU backend gives.
    Kernel(DeviceFailure),
    /// A kernel set its error word to a code no kernel stores (a code generator bug).
    UnknownErrorCode(i32),
    /// Something that should not happen did (a malformed program or an internal bug).
    Internal(String),
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::NoDriver => f.write_str(
                "no CUDA driver found (libcuda.so is not loadable): CUDA devices are unavailable on this machine",
            ),
            CudaError::DriverUnusable { message } => {
                write!(f, "the CUDA driver could not be used: {message}")
            }
            CudaError::NoDevice { device, count } => {
                let s = if *count == 1 { "" } else { "s" };
                write!(f, "device cuda:{device} does not exist ({count} device{s})")
            }
            CudaError::Driver { call, code, message } => {
                write!(f, "CUDA driver call {call} failed: {code}: {message}")
            }
            CudaError::Blas { call, status } => write!(f, "cuBLAS call {call} failed: {status}"),
            CudaError::UnsupportedDevice { device, capability: (major, minor) } => write!(
                f,
                "device cuda:{device} has compute capability {major}.{minor}; tenjit's CUDA backend needs 8.0 or newer"
            ),
            CudaError::Codegen(e) => write!(f, "rendering CUDA C: {e}"),
            CudaError::Nvrtc(e) => write!(f, "{e}"),
            CudaError::MissingInput { index, given } => {
                write!(f, "input {index} is missing ({given} inputs given)")
            }
            CudaError::InputType { index, expected, got } => {
                write!(f, "input {index} is {got} but the program was compiled for {expected}")
            }
            CudaError::InputDevice { index, expected, got } => write!(
                f,
                "input {index} is on cuda:{got} but the program was compiled for cuda:{expected}"
            ),
            CudaError::Kernel(failure) => write!(f, "{failure}"),
            CudaError::UnknownErrorCode(code) => {
                write!(f, "a kernel reported error code {code}, which no kernel stores (a code generator bug)")
            }
            CudaError::Internal(m) => write!(f, "CUDA runtime: {m}"),
        }
    }
}

impl std::error::Error for CudaError {}

impl From<CodegenError> for CudaError {
    fn from(e: CodegenError) -> CudaError {
        CudaError::Codegen(e)
    }
}

impl From<NvrtcError> for CudaError {
    fn from(e: NvrtcError) -> CudaError {
        CudaError::Nvrtc(e)
    }
}

/// A [`CudaError::Driver`] for the failure `e` of `call`.
///
/// Only called with errors the driver returned, so the library is loaded and
/// `cuGetErrorString` may be called.
pub(crate) fn driver_error(call: impl Into<String>, e: DriverError) -> CudaError {
    let message = e.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    CudaError::Driver { call: call.into(), code: format!("{:?}", e.0), message }
}

/// Runs `f`, turning a panic inside cudarc (a missing library or symbol) into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string());
        Err(CudaError::DriverUnusable { message: format!("{what}: {text}") })
    })
}

/// The driver's answer, asked once: the number of devices, or why there are none to count.
fn driver() -> &'static Result<usize, CudaError> {
    static DRIVER: OnceLock<Result<usize, CudaError>> = OnceLock::new();
    DRIVER.get_or_init(|| {
        // SAFETY: `is_culib_present` only tries to dlopen candidate library names and closes
        // what it opened; it calls nothing in them.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaError::NoDriver);
        }
        guarded("counting devices", || match CudaContext::device_count() {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            // cuInit reports a machine whose devices are all hidden (CUDA_VISIBLE_DEVICES="")
            // or absent this way: no devices, not a broken driver.
            Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => Ok(0),
            Err(e) => Err(driver_error("cuInit/cuDeviceGetCount", e)),
        })
    })
}

/// Whether CUDA device 0 can be used: the driver loads, there is a device, and its context
/// can be created. Asked once per process; never panics.
pub fn is_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| device(0).is_ok())
}

/// The number of CUDA devices (0 when there is no driver). Never panics.
pub fn device_count() -> usize {
    match driver() {
        Ok(n) => *n,
        Err(_) => 0,
    }
}

/// Why no device can be used at all, or `None` when the driver works (some device may still
/// fail to open: see [`device_info`]).
pub fn unavailable_reason() -> Option<CudaError> {
    match driver() {
        Ok(0) => Some(CudaError::NoDevice { device: 0, count: 0 }),
        Ok(_) => None,
        Err(e) => Some(e.clone()),
    }
}

/// A device's name and compute capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The ordinal.
    pub ordinal: usize,
    /// The device's name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// The compute capability, `(major, minor)`.
    pub capability: (i32, i32),
}

/// The name and compute capability of device `ordinal`, opening it if needed.
pub fn device_info(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let d = device(ordinal)?;
    Ok(DeviceInfo { ordinal, name: d.name.clone(), capability: d.capability })
}

/// Waits until all work tenjit issued on device `ordinal` is done.
pub fn synchronize(ordinal: usize) -> Result<(), CudaError> {
    let d = device(ordinal)?;
    d.stream.synchronize().map_err(|e| driver_error("cuStreamSynchronize", e))
}

/// An open device: its context, the one stream tenjit uses on it, and what was asked of it.
pub(crate) struct Device {
    /// The ordinal.
    pub ordinal: usize,
    /// The primary context (event tracking off: see the module doc).
    pub ctx: Arc<CudaContext>,
    /// The stream every operation on this device is issued on.
    pub stream: Arc<CudaStream>,
    /// The compute capability.
    pub capability: (i32, i32),
    /// The device's name.
    pub name: String,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cuda:{} ({}, sm_{}{})", self.ordinal, self.name, self.capability.0, self.capability.1)
    }
}

/// The open devices, by ordinal (a failed open is retried on the next call).
static DEVICES: Mutex<Vec<Option<Arc<Device>>>> = Mutex::new(Vec::new());

/// Device `ordinal`, opened on first use.
pub(crate) fn device(ordinal: usize) -> Result<Arc<Device>, CudaError> {
    let count = match driver() {
        Ok(n) => *n,
        Err(e) => return Err(e.clone()),
    };
    if ordinal >= count {
        return Err(CudaError::NoDevice { device: ordinal, count });
    }
    let mut devices = DEVICES.lock().unwrap_or_else(|p| p.into_inner());
    if devices.len() < count {
        devices.resize(count, None);
    }
    if let Some(d) = &devices[ordinal] {
        return Ok(d.clone());
    }
    let d = Arc::new(guarded("opening the device", || open(ordinal))?);
    devices[ordinal] = Some(d.clone());
    Ok(d)
}

fn open(ordinal: usize) -> Result<Device, CudaError> {
    let at = |call: &str| format!("{call} (opening cuda:{ordinal})");
    let ctx = CudaContext::new(ordinal).map_err(|e| driver_error(at("cuDevicePrimaryCtxRetain"), e))?;
    // SAFETY: every allocation of this context is made, used and freed on the one stream
    // created just below (this module and `exec` issue all their work on `Device::stream`),
    // so stream order alone orders every access; no slice of this context exists yet.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.new_stream().map_err(|e| driver_error(at("cuStreamCreate"), e))?;
    let capability = ctx.compute_capability().map_err(|e| driver_error(at("cuDeviceGetAttribute"), e))?;
    let name = ctx.name().map_err(|e| driver_error(at("cuDeviceGetName"), e))?;
    Ok(Device { ordinal, ctx, stream, capability, name })
}

/// Device memory of one element type.
#[derive(Debug)]
pub(crate) enum Storage {
    /// Bool elements, one byte each (0 or 1).
    Bool(CudaSlice<u8>),
    /// `i32` elements.
    I32(CudaSlice<i32>),
    /// `i64` elements.
    I64(CudaSlice<i64>),
    /// `f16` elements, as their bits.
    F16(CudaSlice<u16>),
    /// `bf16` elements, as their bits.
    BF16(CudaSlice<u16>),
    /// `f32` elements.
    F32(CudaSlice<f32>),
    /// `f64` elements.
    F64(CudaSlice<f64>),
}

/// The size in bytes of one element of `dtype` on the device.
pub(crate) fn elem_bytes(dtype: DType) -> usize {
    match dtype {
        DType::Bool => 1,
        DType::F16 | DType::BF16 => 2,
        DType::I32 | DType::F32 => 4,
        DType::I64 | DType::F64 => 8,
    }
}

impl Storage {
    /// An uninitialized allocation of `len` elements of `dtype` (at least one element).
    pub(crate) fn alloc(stream: &Arc<CudaStream>, dtype: DType, len: usize) -> Result<Storage, DriverError> {
        let n = len.max(1);
        // SAFETY: every bit pattern is a valid `u8`, `i32`, `i64`, `f32` and `f64`, so
        // uninitialized device memory is never an invalid value of the element type; the
        // program steps write every element of a temp before it is read (the code
        // generator's contract), and uploads overwrite all of theirs.
        unsafe {
            Ok(match dtype {
                DType::Bool => Storage::Bool(stream.alloc::<u8>(n)?),
                DType::I32 => Storage::I32(stream.alloc::<i32>(n)?),
                DType::I64 => Storage::I64(stream.alloc::<i64>(n)?),
                DType::F16 => Storage::F16(stream.alloc::<u16>(n)?),
                DType::BF16 => Storage::BF16(stream.alloc::<u16>(n)?),
                DType::F32 => Storage::F32(stream.alloc::<f32>(n)?),
                DType::F64 => Storage::F64(stream.alloc::<f64>(n)?),
            })
        }
    }

    /// The device address of the first element.
    pub(crate) fn ptr(&self, stream: &CudaStream) -> u64 {
        // With event tracking off the returned guard records nothing when dropped.
        match self {
            Storage::Bool(s) => s.device_ptr(stream).0,
            Storage::I32(s) => s.device_ptr(stream).0,
            Storage::I64(s) => s.device_ptr(stream).0,
            Storage::F16(s) | Storage::BF16(s) => s.device_ptr(stream).0,
            Storage::F32(s) => s.device_ptr(stream).0,
            Storage::F64(s) => s.device_ptr(stream).0,
        }
    }

    /// A device-to-device copy of the first `len` elements into a new allocation.
    pub(crate) fn copy(&self, stream: &Arc<CudaStream>, len: usize) -> Result<Storage, DriverError> {
        fn dup<T: cudarc::driver::DeviceRepr>(
            stream: &Arc<CudaStream>,
            s: &CudaSlice<T>,
            len: usize,
        ) -> Result<CudaSlice<T>, DriverError> {
            // SAFETY: as in `Storage::alloc`; the first `len` elements are overwritten by the
            // copy below and the rest (the spare element of an empty tensor) is never read.
            let mut out = unsafe { stream.alloc::<T>(len.max(1)) }?;
            if len > 0 {
                stream.memcpy_dtod(&s.slice(0..len), &mut out.slice_mut(0..len))?;
            }
            Ok(out)
        }
        Ok(match self {
            Storage::Bool(s) => Storage::Bool(dup(stream, s, len)?),
            Storage::I32(s) => Storage::I32(dup(stream, s, len)?),
            Storage::I64(s) => Storage::I64(dup(stream, s, len)?),
            Storage::F16(s) => Storage::F16(dup(stream, s, len)?),
            Storage::BF16(s) => Storage::BF16(dup(stream, s, len)?),
            Storage::F32(s) => Storage::F32(dup(stream, s, len)?),
            Storage::F64(s) => Storage::F64(dup(stream, s, len)?),
        })
    }
}

/// A dense row-major tensor in the memory of one CUDA device.
///
/// Dropping it frees the memory in stream order (after the work already issued on its
/// device's stream).
#[derive(Debug)]
pub struct DeviceBuffer {
    ty: TensorType,
    device: usize,
    storage: Storage,
}

impl DeviceBuffer {
    /// Wraps an allocation of at least `ty.shape.numel()` elements of `ty.dtype`.
    pub(crate) fn from_storage(ty: TensorType, device: usize, storage: Storage) -> DeviceBuffer {
        DeviceBuffer { ty, device, storage }
    }

    /// The element type and shape.
    pub fn ty(&self) -> &TensorType {
        &self.ty
    }

    /// The ordinal of the device holding it.
    pub fn device(&self) -> usize {
        self.device
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.ty.shape.numel()
    }

    /// The memory.
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Copies the tensor back to the host; see [`download`].
    pub fn to_host(&self) -> Result<Buffer, CudaError> {
        download(self)
    }
}

/// Copies `buf` into new memory on device `device`; returns once the copy is complete.
pub fn upload(buf: &Buffer, device: usize) -> Result<DeviceBuffer, CudaError> {
    let d = self::device(device)?;
    let stream = &d.stream;
    let what = || format!("cuMemcpyHtoDAsync (uploading a {} to cuda:{device})", buf.ty());
    fn put<T: cudarc::driver::DeviceRepr>(
        stream: &Arc<CudaStream>,
        host: &[T],
    ) -> Result<CudaSlice<T>, DriverError> {
        // SAFETY: as in `Storage::alloc`; the copy overwrites all `host.len()` elements and
        // the spare element of an empty tensor is never read.
        let mut dst = unsafe { stream.alloc::<T>(host.len().max(1)) }?;
        if !host.is_empty() {
            stream.memcpy_htod(host, &mut dst.slice_mut(0..host.len()))?;
        }
        Ok(dst)
    }
    let storage = guarded("uploading", || {
        let r = match buf.data() {
            Data::Bool(v) => {
                let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                put(stream, &bytes).map(Storage::Bool)
            }
            Data::I32(v) => put(stream, v).map(Storage::I32),
            Data::I64(v) => put(stream, v).map(Storage::I64),
            Data::F16(v) => {
                let bits: Vec<u16> = v.iter().map(|x| x.to_bits()).collect();
                put(stream, &bits).map(Storage::F16)
            }
            Data::BF16(v) => {
                let bits: Vec<u16> = v.iter().map(|x| x.to_bits()).collect();
                put(stream, &bits).map(Storage::BF16)
            }
            Data::F32(v) => put(stream, v).map(Storage::F32),
            Data::F64(v) => put(stream, v).map(Storage::F64),
        };
        // The host data may be freed as soon as this returns.
        let r = r.and_then(|s| stream.synchronize().map(|()| s));
        r.map_err(|e| driver_error(what(), e))
    })?;
    Ok(DeviceBuffer { ty: buf.ty(), device, storage })
}

/// Copies `d` to a new host buffer; returns once the copy is complete (and so once every
/// operation issued before on the device's stream is done).
pub fn download(d: &DeviceBuffer) -> Result<Buffer, CudaError> {
    let n = d.numel();
    let shape = d.ty.shape.clone();
    let data = if n == 0 {
        empty_data(d.ty.dtype)
    } else {
        let dev = device(d.device)?;
        let stream = &dev.stream;
        fn get<T: cudarc::driver::DeviceRepr>(
            stream: &Arc<CudaStream>,
            s: &CudaSlice<T>,
            n: usize,
        ) -> Result<Vec<T>, DriverError> {
            let v = stream.clone_dtoh(&s.slice(0..n))?;
            stream.synchronize()?;
            Ok(v)
        }
        let what = || format!("cuMemcpyDtoHAsync (downloading a {} from cuda:{})", d.ty, d.device);
        guarded("downloading", || {
            let r =
                match &d.storage {
                    Storage::Bool(s) => {
                        get(stream, s, n).map(|v| Data::Bool(v.into_iter().map(|b| b != 0).collect()))
                    }
                    Storage::I32(s) => get(stream, s, n).map(Data::I32),
                    Storage::I64(s) => get(stream, s, n).map(Data::I64),
                    Storage::F16(s) => get(stream, s, n)
                        .map(|v| Data::F16(v.into_iter().map(half::f16::from_bits).collect())),
                    Storage::BF16(s) => get(stream, s, n)
                        .map(|v| Data::BF16(v.into_iter().map(half::bf16::from_bits).collect())),
                    Storage::F32(s) => get(stream, s, n).map(Data::F32),
                    Storage::F64(s) => get(stream, s, n).map(Data::F64),
                };
            r.map_err(|e| driver_error(what(), e))
        })?
    };
    Buffer::new(shape, data).map_err(|e| CudaError::Internal(format!("downloading: {e}")))
}

fn empty_data(dtype: DType) -> Data {
    match dtype {
        DType::Bool => Data::Bool(Vec::new()),
        DType::I32 => Data::I32(Vec::new()),
        DType::I64 => Data::I64(Vec::new()),
        DType::F16 => Data::F16(Vec::new()),
        DType::BF16 => Data::BF16(Vec::new()),
        DType::F32 => Data::F32(Vec::new()),
        DType::F64 => Data::F64(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_clearly() {
        assert_eq!(
            CudaError::NoDriver.to_string(),
            "no CUDA driver found (libcuda.so is not loadable): CUDA devices are unavailable on this machine"
        );
        assert_eq!(
            CudaError::NoDevice { device: 3, count: 2 }.to_string(),
            "device cuda:3 does not exist (2 devices)"
        );
        assert_eq!(
            CudaError::NoDevice { device: 1, count: 1 }.to_string(),
            "device cuda:1 does not exist (1 device)"
        );
        let e = CudaError::Driver {
            call: "cuMemAllocAsync (allocating b3)".into(),
            code: "CUDA_ERROR_OUT_OF_MEMORY".into(),
            message: "out of memory".into(),
        };
        assert_eq!(
            e.to_string(),
            "CUDA driver call cuMemAllocAsync (allocating b3) failed: CUDA_ERROR_OUT_OF_MEMORY: out of memory"
        );
        let e = CudaError::Kernel(DeviceFailure::Arithmetic {
            op: "floor_div",
            message: "integer division by zero",
        });
        assert_eq!(e.to_string(), "floor_div: integer division by zero");
        let e = CudaError::UnsupportedDevice { device: 0, capability: (7, 5) };
        assert!(e.to_string().contains("compute capability 7.5"), "{e}");
    }

    #[test]
    fn a_panic_inside_the_guard_is_an_error() {
        let r: Result<(), CudaError> = guarded("probing", || panic!("symbol cuFoo not found"));
        let e = r.unwrap_err();
        assert!(matches!(e, CudaError::DriverUnusable { .. }), "{e}");
        assert!(e.to_string().contains("probing: symbol cuFoo not found"), "{e}");
    }

    #[test]
    fn element_sizes_match_the_generated_c_types() {
        assert_eq!(elem_bytes(DType::Bool), 1);
        assert_eq!(elem_bytes(DType::I32), 4);
        assert_eq!(elem_bytes(DType::F64), 8);
    }
}
