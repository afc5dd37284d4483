//! `.npy` reading and writing: round trips of every dtype, files written by NumPy (made by
//! `tests/data/make_npy.py`), and errors for broken inputs, which must never panic.

use std::path::PathBuf;
use tenjit_ir::npy::{self, NpyError, NpyErrorKind};
use tenjit_ir::{Buffer, DType};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn to_bytes(b: &Buffer) -> Vec<u8> {
    let mut out = Vec::new();
    npy::write_npy(&mut out, b).unwrap();
    out
}

fn from_bytes(bytes: &[u8]) -> Result<Buffer, NpyError> {
    npy::read_npy(&mut &bytes[..])
}

fn round_trip(b: &Buffer) {
    let bytes = to_bytes(b);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "data is 64-byte aligned");
    assert_eq!(bytes.len(), 10 + header_len + b.numel() * b.dtype().size_bytes());
    assert_eq!(&from_bytes(&bytes).unwrap(), b);
}

#[test]
fn round_trips_every_dtype_and_shape() {
    let shapes: [&[usize]; 6] = [&[], &[0], &[5], &[2, 3], &[0, 3], &[2, 1, 3, 2]];
    for dims in shapes {
        let n: usize = dims.iter().product();
        round_trip(&Buffer::from_vec((0..n).map(|i| i % 3 == 0).collect::<Vec<_>>(), dims).unwrap());
        round_trip(
            &Buffer::from_vec((0..n).map(|i| i as i32 * -7 + i32::MAX / 2).collect::<Vec<_>>(), dims)
                .unwrap(),
        );
        round_trip(
            &Buffer::from_vec((0..n).map(|i| (i as i64 - 3) << 40).collect::<Vec<_>>(), dims).unwrap(),
        );
        round_trip(
            &Buffer::from_vec((0..n).map(|i| i as f32 * 0.1 - 1.0).collect::<Vec<_>>(), dims).unwrap(),
        );
        round_trip(
            &Buffer::from_vec((0..n).map(|i| (i as f64).sqrt() * 1e-200).collect::<Vec<_>>(), dims).unwrap(),
        );
        round_trip(
            &Buffer::from_vec(
                (0..n).map(|i| half::f16::from_f32(i as f32 * 0.3 - 1.0)).collect::<Vec<_>>(),
                dims,
            )
            .unwrap(),
        );
    }
}

#[test]
fn round_trips_special_floats_bit_for_bit() {
    let v = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, f32::MIN_POSITIVE / 2.0, f32::MAX];
    let back = from_bytes(&to_bytes(&Buffer::from_vec(v.clone(), [6]).unwrap())).unwrap();
    let back = back.as_slice::<f32>().unwrap();
    assert_eq!(
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn save_and_load_through_a_file() {
    let path = std::env::temp_dir().join(format!("tenjit-npy-test-{}.npy", std::process::id()));
    let b = Buffer::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    npy::save(&path, &b).unwrap();
    let back = npy::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.unwrap(), b);
}

#[test]
fn reads_files_written_by_numpy() {
    let cases: Vec<(&str, Buffer)> = vec![
        ("f4_2x3.npy", Buffer::from_vec(vec![-1.0f32, -0.5, 0.0, 0.5, 1.0, 1.5], [2, 3]).unwrap()),
        ("f8_3.npy", Buffer::from_vec(vec![1.5f64, -2.25, 1e300], [3]).unwrap()),
        ("i4_2x2.npy", Buffer::from_vec(vec![1i32, -2, 3, i32::MAX], [2, 2]).unwrap()),
        ("i8_scalar.npy", Buffer::from_vec(vec![-9_000_000_000i64], []).unwrap()),
        ("b1_4.npy", Buffer::from_vec(vec![true, false, false, true], [4]).unwrap()),
        ("f4_empty_0x3.npy", Buffer::from_vec(Vec::<f32>::new(), [0, 3]).unwrap()),
        ("f4_fortran_2x3.npy", Buffer::from_vec(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [2, 3]).unwrap()),
        ("i4_fortran_2x3x4.npy", Buffer::from_vec((0..24).collect::<Vec<i32>>(), [2, 3, 4]).unwrap()),
        ("f4_big_endian_3.npy", Buffer::from_vec(vec![1.0f32, 2.5, -3.0], [3]).unwrap()),
        ("i8_big_endian_2x2.npy", Buffer::from_vec(vec![1i64, -2, 3, 1 << 40], [2, 2]).unwrap()),
        ("f8_v2_2x2.npy", Buffer::from_vec(vec![0.25f64, -1.0, 3.0, 1e-300], [2, 2]).unwrap()),
        ("i4_v3_3.npy", Buffer::from_vec(vec![7i32, 8, 9], [3]).unwrap()),
        ("f2_2.npy", Buffer::from_vec(vec![half::f16::ONE, half::f16::from_f32(2.0)], [2]).unwrap()),
    ];
    for (name, expected) in cases {
        let got = npy::load(data(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn writes_what_numpy_writes_byte_for_byte() {
    for name in
        ["f4_2x3.npy", "f8_3.npy", "i4_2x2.npy", "i8_scalar.npy", "b1_4.npy", "f4_empty_0x3.npy", "f2_2.npy"]
    {
        let file = std::fs::read(data(name)).unwrap();
        let b = from_bytes(&file).unwrap();
        assert_eq!(to_bytes(&b), file, "{name}");
    }
}

#[test]
fn writes_version_2_when_the_header_is_too_long_for_1() {
    // A shape of 30000 ones makes a header over 64 KiB.
    let dims = vec![1usize; 30_000];
    let b = Buffer::from_vec(vec![42i32], dims).unwrap();
    let bytes = to_bytes(&b);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x02\x00");
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!((12 + header_len) % 64, 0);
    assert_eq!(from_bytes(&bytes).unwrap(), b);
}

/// The error's text, with the kind checked by `check`.
fn error_of(bytes: &[u8], check: impl Fn(&NpyErrorKind) -> bool) -> String {
    let err = from_bytes(bytes).expect_err("input should be rejected");
    assert!(check(&err.kind), "unexpected kind: {err:?}");
    err.to_string()
}

#[test]
fn rejects_unsupported_dtypes_by_name() {
    for (name, descr) in [("u1_2.npy", "'|u1'"), ("structured_2.npy", "[('a', '<i4'), ('b', '<f4')]")] {
        let err = npy::load(data(name)).unwrap_err();
        assert!(matches!(err.kind, NpyErrorKind::UnsupportedDtype { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(text.contains(&format!("unsupported dtype {descr}")) || text.contains(descr), "{text}");
    }
}

#[test]
fn names_the_file_when_loading_by_path() {
    let err = npy::load(data("no_such_file.npy")).unwrap_err();
    assert!(matches!(err.kind, NpyErrorKind::Io(_)));
    assert!(err.to_string().contains("no_such_file.npy"), "{err}");
}

/// A version 1.0 file with the given header text (padded) and data.
fn file_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn reports_what_is_wrong_and_where() {
    assert_eq!(
        error_of(b"PK\x03\x04zipfile", |k| matches!(k, NpyErrorKind::BadMagic { .. })),
        "npy: not a .npy file: it starts with b'PK\\x03\\x04zipf' instead of \\x93NUMPY"
    );
    assert_eq!(
        error_of(b"", |k| matches!(k, NpyErrorKind::BadMagic { .. })),
        "npy: not a .npy file: it starts with nothing (the input is empty) instead of \\x93NUMPY"
    );
    assert_eq!(
        error_of(b"\x93NUMPY\x04\x00", |k| matches!(
            k,
            NpyErrorKind::UnsupportedVersion { major: 4, minor: 0 }
        )),
        "npy: unsupported .npy format version 4.0 at byte 6 (tenjit reads 1.0, 2.0 and 3.0)"
    );
    assert_eq!(
        error_of(b"\x93NUMPY\x01\x00\x76\x00{'descr'", |k| matches!(k, NpyErrorKind::TruncatedHeader { .. })),
        "npy: truncated header: the input ends at byte 18, the header should end at byte 128"
    );
    assert_eq!(
        error_of(&file_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &[0; 20]), |k| {
            matches!(k, NpyErrorKind::TruncatedData { expected: 24, found: 20, .. })
        }),
        "npy: truncated data: shape (2, 3) of '<f4' needs 24 bytes from byte 128, but the input ends after 20 (at byte 148)"
    );
    assert_eq!(
        error_of(
            &file_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", &[]),
            |k| { matches!(k, NpyErrorKind::MalformedHeader { offset: 64, .. }) }
        ),
        "npy: malformed header at byte 64: expected a dimension size, found 'x'"
    );
    assert_eq!(
        error_of(&file_with_header("{'descr': '<f4', 'shape': (3,), }", &[]), |k| {
            matches!(k, NpyErrorKind::MalformedHeader { .. })
        }),
        "npy: malformed header at byte 10: the header dict has no 'fortran_order' key"
    );
    assert_eq!(
        error_of(&file_with_header("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", &[]), |k| {
            matches!(k, NpyErrorKind::MalformedHeader { .. })
        }),
        "npy: malformed header at byte 44: expected a string, True, False or a tuple, found '0'"
    );
    assert_eq!(
        error_of(&file_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", &[]), |k| {
            matches!(k, NpyErrorKind::MalformedHeader { .. })
        }),
        "npy: malformed header at byte 61: a one-dimensional shape needs a trailing comma, as in (3,)"
    );
    assert_eq!(
        error_of(
            &file_with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
                &[]
            ),
            |k| { matches!(k, NpyErrorKind::ShapeOverflow { .. }) }
        ),
        "npy: shape (4294967296, 4294967296, 4294967296) is too large to address"
    );
}

#[test]
fn a_huge_claimed_shape_is_an_error_not_an_allocation() {
    let bytes =
        file_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }", &[1, 2, 3]);
    let err = from_bytes(&bytes).unwrap_err();
    assert!(matches!(err.kind, NpyErrorKind::TruncatedData { found: 3, .. }), "{err:?}");
}

#[test]
fn accepts_header_variants_numpy_has_written() {
    // Double quotes, Python 2 long suffixes, keys in another order, no trailing comma.
    let bytes = file_with_header(
        r#"{"shape": (2L, 1L), "fortran_order": False, "descr": "<i4"}"#,
        &[1, 0, 0, 0, 2, 0, 0, 0],
    );
    assert_eq!(from_bytes(&bytes).unwrap(), Buffer::from_vec(vec![1i32, 2], [2, 1]).unwrap());
    // A fortran-order 1-D array is the same as a C-order one.
    let bytes = file_with_header("{'descr': '|b1', 'fortran_order': True, 'shape': (2,), }", &[1, 0]);
    assert_eq!(from_bytes(&bytes).unwrap().dtype(), DType::Bool);
}

#[test]
fn never_panics_on_truncated_or_garbled_input() {
    let files: Vec<Vec<u8>> =
        ["f4_2x3.npy", "i4_fortran_2x3x4.npy", "f8_v2_2x2.npy", "i4_v3_3.npy", "structured_2.npy"]
            .iter()
            .map(|n| std::fs::read(data(n)).unwrap())
            .collect();
    for file in &files {
        // Every prefix.
        for end in 0..file.len() {
            assert!(from_bytes(&file[..end]).is_err(), "a {end}-byte prefix was accepted");
        }
        // Every byte flipped to a few values (a simple deterministic mutation sweep).
        for i in 0..file.len() {
            for v in [0u8, b' ', b'(', b')', b',', b'\'', b'9', 0x80, 0xff] {
                let mut g = file.clone();
                g[i] = v;
                let _ = from_bytes(&g);
            }
        }
    }
}
