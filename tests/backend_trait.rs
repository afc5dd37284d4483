//! The runtime's `Backend` trait, used as a third backend's author would: compile a lowered
//! program, move buffers in and out, run. On the CPU everything works; a CUDA device without a
//! driver is a clear error, not a panic.

use std::sync::Arc;
use tenjit::ir::{Buffer, Graph};
use tenjit::runtime::{backend_for, Value};
use tenjit::Device;

fn exp_graph() -> Graph {
    tenjit::ir::text::parse("graph @f(%x: f32[4]) {\n  %0 = exp %x : f32[4]\n  return %0\n}\n")
        .expect("valid")
}

#[test]
fn the_cpu_backend_compiles_moves_and_runs() {
    let cpu = backend_for(Device::Cpu).expect("the CPU is always there");
    assert_eq!(cpu.name(), "cpu");
    let program = tenjit::ir::kernel::lower::lower(&exp_graph());
    assert!(!cpu.render(&program).is_empty(), "one CLIF text per kernel");
    let exe = cpu.compile(program).expect("compiles");
    let x = Arc::new(Buffer::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], vec![4]).expect("4 elements"));
    let input = cpu.upload(&x).expect("the host shares its buffers");
    let mut outputs = Vec::new();
    exe.run(&[input], &mut |v| outputs.push(v)).expect("runs");
    assert_eq!(outputs.len(), 1);
    let y = cpu.download(&outputs[0]).expect("a host value");
    let y = y.as_slice::<f32>().expect("f32").to_vec();
    let want: Vec<f32> = [0.0f32, 1.0, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    for (a, b) in y.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "{y:?} vs {want:?}");
    }
    let ty = tenjit::ir::TensorType::new(tenjit::DType::F32, tenjit::ir::Shape::new(&[2, 3]));
    let fresh = cpu.allocate(&ty).expect("host memory");
    assert!(matches!(&fresh, Value::Host(b) if b.ty() == ty));
    cpu.free(fresh);
}

#[test]
fn a_cuda_device_without_a_driver_is_an_error() {
    if tenjit::cuda::is_available() {
        return;
    }
    let err = backend_for(Device::Cuda(0)).err().expect("no driver, no backend");
    assert!(err.to_string().contains("device cuda:0 is not available"), "{err}");
    // Rendering needs no device.
    let program = tenjit::ir::kernel::lower::lower(&exp_graph());
    let texts = tenjit::runtime::render(&program, Device::Cuda(0));
    assert!(texts[0].1.contains("__global__"), "{}", texts[0].1);
}

#[test]
fn any_ordinal_is_a_clear_error() {
    if tenjit::cuda::device_count() > 1000 {
        return;
    }
    for ordinal in [1000, usize::MAX] {
        let err = Device::Cuda(ordinal).check_available().expect_err("no such device");
        assert!(err.to_string().contains(&format!("cuda:{ordinal}")), "{err}");
    }
}
