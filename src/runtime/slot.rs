//! The value cell of a tensor node: set once, when the node is computed, with the value where
//! it was computed and a host copy made the first time the host asks for it. A host buffer no
//! other handle shares goes back to the CPU backend's pool when its slot is dropped.

use super::{DeviceValue, Value};
use crate::device::Device;
use crate::error::Result;
use std::sync::{Arc, OnceLock};
use tenjit_ir::Buffer;

/// A tensor node's value, set once: where it was computed, and a host copy made on demand.
pub struct Slot {
    host: OnceLock<Arc<Buffer>>,
    device: OnceLock<DeviceValue>,
    /// The size of the value, counted in [`super::live::live`] while one is set.
    bytes: usize,
}

impl Slot {
    /// An empty slot for a value of `bytes` bytes (the node is not computed yet).
    pub fn new(bytes: usize) -> Slot {
        Slot { host: OnceLock::new(), device: OnceLock::new(), bytes }
    }

    /// A slot holding `value`, of `bytes` bytes.
    pub fn with(value: Value, bytes: usize) -> Slot {
        let slot = Slot::new(bytes);
        slot.set(value);
        slot
    }

    /// Whether a value is set.
    pub fn is_set(&self) -> bool {
        self.host.get().is_some() || self.device.get().is_some()
    }

    /// Sets the value; a slot already set keeps its value (the first realization wins).
    pub fn set(&self, value: Value) {
        let was_set = self.is_set();
        let stored = match value {
            Value::Host(b) => self.host.set(b).is_ok(),
            Value::Device(d) => self.device.set(d).is_ok(),
        };
        // A node's value is always of one kind (its device's), so of two realizations racing
        // only the first stores and counts.
        if stored && !was_set {
            super::live::value_bytes(self.bytes, true);
        }
    }

    /// The value in host memory, if it is there (computed there, or copied already).
    pub fn host(&self) -> Option<&Arc<Buffer>> {
        self.host.get()
    }

    /// The value as a computation on `device` reads it: the host buffer for the CPU, the
    /// backend's own buffer for any other device.
    pub fn value_on(&self, device: Device) -> Option<Value> {
        match device {
            Device::Cpu => self.host.get().cloned().map(Value::Host),
            Device::Cuda(_) => self.device.get().cloned().map(Value::Device),
        }
    }

    /// The value in host memory, copied from `device` (where it was computed) the first time
    /// it is asked for; `None` when no value is set.
    pub fn to_host(&self, device: Device) -> Result<Option<Arc<Buffer>>> {
        if let Some(h) = self.host.get() {
            return Ok(Some(h.clone()));
        }
        let Some(d) = self.device.get() else { return Ok(None) };
        let host = super::download(&Value::Device(d.clone()), device)?;
        Ok(Some(self.host.get_or_init(|| Arc::new(host)).clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.is_set() {
            super::live::value_bytes(self.bytes, false);
        }
        // A host value no other handle shares goes back to the CPU backend's buffer pool.
        if let Some(h) = self.host.take() {
            super::free_host(h);
        }
    }
}
