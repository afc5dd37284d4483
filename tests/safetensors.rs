//! Safetensors files and state dicts: every dtype round-trips; a file PyTorch wrote
//! (`tests/oracle/gen_models.py`) loads with the values torch saved, its `f16` and `bf16`
//! tensors included; a dtype tenjit lacks, a
//! file that is not safetensors and a missing file are errors naming the file (and the
//! tensor); `load_state_dict` checks names and shapes as torch does and converts dtypes.

use std::path::PathBuf;
use tenjit::nn::{self, Embedding, LayerNorm, Linear, Module};
use tenjit::prelude::*;

fn models_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/data/models").join(name)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tenjit_test_{}_{name}", std::process::id()))
}

#[test]
fn every_dtype_round_trips() {
    let path = temp("round_trip.safetensors");
    let b = tensor!([true, false, true]);
    let i = Tensor::arange(6).reshape([2, 3]).to_dtype(DType::I32);
    let l = Tensor::arange(4) * 1_000_000_000_000i64;
    let f = Tensor::randn([3, 2, 2]);
    let d = (Tensor::randn([5]).to_dtype(DType::F64) * 3.0).exp(); // lazy until saved
    let s = Tensor::scalar(2.5);
    let e = Tensor::zeros([0, 3]);
    let h = Tensor::randn([2, 3]).half();
    let bf = (Tensor::randn([4]) * 100.0).bfloat16();
    let all =
        [("b", &b), ("i", &i), ("l", &l), ("f", &f), ("d", &d), ("s", &s), ("e", &e), ("h", &h), ("bf", &bf)];
    tenjit::save_safetensors(&path, &all).expect("saves");
    let loaded = tenjit::load_safetensors(&path).expect("loads");
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.len(), all.len());
    for (name, t) in all {
        let got = &loaded[name];
        assert_eq!(got.ty(), t.ty(), "{name}");
        assert_eq!(got.to_string(), t.to_string(), "{name}");
        assert!(got.is_realized() && !got.requires_grad(), "{name}");
    }
    assert_eq!(loaded["d"].to_vec::<f64>(), d.to_vec::<f64>());
}

#[test]
fn a_file_pytorch_wrote_loads_with_its_values() {
    let loaded =
        tenjit::load_safetensors(models_data("gpt.weights.safetensors")).expect("torch's file loads");
    assert_eq!(loaded.len(), 3 + 2 * 6, "wte, wpe, ln_f and six weights per block");
    for (name, t) in &loaded {
        let want = Tensor::load_npy(models_data(&format!("gpt.param.{name}.npy"))).unwrap();
        assert_eq!(t.ty(), want.ty(), "{name}");
        assert_eq!(t.to_vec::<f64>(), want.to_vec::<f64>(), "{name}");
    }
}

#[test]
fn sixteen_bit_floats_pytorch_wrote_load() {
    let loaded = tenjit::load_safetensors(models_data("half.safetensors")).expect("torch's file loads");
    let values = [1.0, -2.5, 65504.0, 1e-7, 0.1, -0.0];
    let (w, b) = (&loaded["w"], &loaded["b"]);
    assert_eq!((w.dtype(), w.shape()), (DType::F16, &[2, 3][..]));
    assert_eq!((b.dtype(), b.shape()), (DType::BF16, &[2, 3][..]));
    let want_w: Vec<f32> = values.iter().map(|&v| tenjit::half::f16::from_f32(v as f32).to_f32()).collect();
    let want_b: Vec<f32> = values.iter().map(|&v| tenjit::half::bf16::from_f32(v as f32).to_f32()).collect();
    assert_eq!(w.to_vec::<f32>(), want_w);
    assert_eq!(b.to_vec::<f32>(), want_b);
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let u8s = models_data("u8.safetensors");
    let e = tenjit::load_safetensors(&u8s).unwrap_err().to_string();
    assert!(e.contains("u8.safetensors") && e.contains("`w`") && e.contains("U8"), "{e}");

    let junk = temp("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!").unwrap();
    let e = tenjit::load_safetensors(&junk).unwrap_err().to_string();
    std::fs::remove_file(&junk).ok();
    assert!(e.contains("junk.safetensors") && e.contains("not a safetensors file"), "{e}");

    let e = tenjit::load_safetensors(temp("absent.safetensors")).unwrap_err();
    assert!(matches!(e, tenjit::Error::Io { .. }), "{e}");

    let x = Tensor::ones([2]);
    let e =
        tenjit::save_safetensors(temp("twice.safetensors"), &[("x", &x), ("x", &x)]).unwrap_err().to_string();
    assert!(e.contains("`x` is given twice"), "{e}");
}

#[test]
fn load_state_dict_checks_names_and_shapes_and_converts_dtypes() {
    tenjit::manual_seed(3);
    let source = Linear::with_options(3, 2, true, DType::F64);
    let state = source.state_dict();
    assert_eq!(state.keys().collect::<Vec<_>>(), ["bias", "weight"]);

    // Into an f32 layer: values converted, still parameters, gradients gone.
    let mut target = Linear::new(3, 2);
    (target.forward(&Tensor::ones([1, 3]))).sum().backward();
    nn::load_state_dict(target.named_parameters_mut(), &state, true).expect("loads");
    assert_eq!(target.weight.dtype(), DType::F32);
    let want: Vec<f32> = source.weight.to_vec::<f64>().iter().map(|&v| v as f32).collect();
    assert_eq!(target.weight.to_vec::<f32>(), want);
    assert!(target.weight.requires_grad() && target.weight.grad().is_none());

    // Names: strict lists every missing and unexpected key, and loads nothing.
    let mut no_bias = Linear::with_options(3, 2, false, DType::F32);
    let before = no_bias.weight.to_vec::<f32>();
    let e = nn::load_state_dict(no_bias.named_parameters_mut(), &state, true).unwrap_err().to_string();
    assert!(e.contains("Unexpected key(s) in state_dict: \"bias\"."), "{e}");
    assert_eq!(no_bias.weight.to_vec::<f32>(), before, "a failed load changes nothing");
    nn::load_state_dict(no_bias.named_parameters_mut(), &state, false).expect("non-strict skips the bias");
    assert_eq!(no_bias.weight.to_vec::<f32>(), want);
    let mut ln = LayerNorm::new(&[2]);
    let e = nn::load_state_dict(ln.named_parameters_mut(), &Embedding::new(4, 2).state_dict(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Missing key(s) in state_dict: \"bias\"."), "{e}");
    assert!(e.contains("size mismatch for weight"), "{e}");

    // Shapes: always an error.
    let mut wide = Linear::new(4, 2);
    let e = nn::load_state_dict(wide.named_parameters_mut(), &state, false).unwrap_err().to_string();
    assert!(e.contains("size mismatch for weight: copying a param with shape [2, 3] from checkpoint, the shape in current model is [2, 4]."), "{e}");
}

#[test]
fn a_saved_model_loads_into_a_new_one() {
    let path = temp("model.safetensors");
    tenjit::manual_seed(5);
    let emb = Embedding::new(7, 4);
    let ln = LayerNorm::new(&[4]);
    let named: Vec<(String, &Tensor)> = nn::prefixed("emb", emb.named_parameters())
        .into_iter()
        .chain(nn::prefixed("ln", ln.named_parameters()))
        .collect();
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    tenjit::save_safetensors(&path, &refs).unwrap();
    let state = tenjit::load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let (mut emb2, mut ln2) = (Embedding::new(7, 4), LayerNorm::new(&[4]));
    let targets: Vec<(String, &mut Tensor)> = nn::prefixed("emb", emb2.named_parameters_mut())
        .into_iter()
        .chain(nn::prefixed("ln", ln2.named_parameters_mut()))
        .collect();
    nn::load_state_dict(targets, &state, true).unwrap();
    let idx = tensor!([[1, 6], [0, 3]]);
    let y1 = ln.forward(&emb.forward(&idx));
    let y2 = ln2.forward(&emb2.forward(&idx));
    assert_eq!(y1.to_vec::<f32>(), y2.to_vec::<f32>());
}
