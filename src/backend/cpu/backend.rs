//! The CPU backend behind the runtime's `Backend` trait: programs compile to
//! [`CpuExecutable`]s, values are host buffers (uploads and downloads share or copy them), and
//! freed buffers go back to the pool of [`memory`](mod@super::memory).
//!
//! This file is the CPU folder's one link to the runtime: it names the trait it implements and
//! nothing else above the backends.

use super::exec::CpuExecutable;
use super::memory;
use crate::error::{DeviceErrorKind, Error, EvalErrorKind, Result};
use crate::runtime::backend::{Backend, Executable, Value};
use smallvec::SmallVec;
use std::sync::Arc;
use tenjit_ir::kernel::{Program, Step};
use tenjit_ir::{Buffer, TensorType};

/// The host CPU as a runtime backend.
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn check_available(&self) -> Result<()> {
        Ok(())
    }

    fn compile(&self, program: Program) -> Result<Arc<dyn Executable>> {
        let exe = CpuExecutable::compile(program)
            .map_err(|e| Error::internal(format!("compilation failed: {e}")))?;
        Ok(Arc::new(exe))
    }

    fn allocate(&self, ty: &TensorType) -> Result<Value> {
        let data = memory::allocate(ty.dtype, ty.shape.numel())
            .map_err(|e| Error::eval(EvalErrorKind::OutOfMemory, format!("{e} for a value of type {ty}")))?;
        let buffer = Buffer::new(ty.shape.clone(), data).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Value::Host(Arc::new(buffer)))
    }

    fn upload(&self, host: &Arc<Buffer>) -> Result<Value> {
        Ok(Value::Host(host.clone()))
    }

    fn download(&self, value: &Value) -> Result<Buffer> {
        Ok((**host_of(value)?).clone())
    }

    fn free(&self, value: Value) {
        if let Value::Host(b) = value {
            if let Some(b) = Arc::into_inner(b) {
                memory::release(b.into_data());
            }
        }
    }

    fn render(&self, program: &Program) -> Vec<(String, String)> {
        render(program)
    }
}

/// The CLIF of each kernel of `program`, with the kernel's name.
pub fn render(program: &Program) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for step in &program.steps {
        if let Step::Kernel(k) = step {
            let text = super::codegen::render(k, &program.buffers)
                .unwrap_or_else(|e| format!("; cannot render: {e}"));
            out.push((k.name.clone(), text));
        }
    }
    out
}

/// The host buffer of a value the CPU computes on.
fn host_of(value: &Value) -> Result<&Arc<Buffer>> {
    value.host().ok_or_else(|| {
        Error::device(
            DeviceErrorKind::Mismatch,
            "the CPU backend was given a value in a GPU's memory (move it with .cpu())",
        )
    })
}

impl Executable for CpuExecutable {
    fn run(&self, inputs: &[Value], output: &mut dyn FnMut(Value)) -> Result<()> {
        // Inline for the inputs of a typical step: no allocation beyond the executor's own.
        let hosts: SmallVec<[Arc<Buffer>; 16]> =
            inputs.iter().map(|v| host_of(v).cloned()).collect::<Result<_>>()?;
        let outputs = CpuExecutable::run(self, &hosts).map_err(Error::from)?;
        for b in outputs {
            output(Value::Host(Arc::new(b)));
        }
        Ok(())
    }
}
