"""Writes the small .npy files that ir/tests/npy.rs reads, so the tests need no Python.

Run from this directory with NumPy installed: `python3 make_npy.py`. The files were made with
NumPy 2.4; ir/tests/npy.rs also checks that tenjit writes the C-order little-endian ones byte
for byte as NumPy did.
"""

import numpy as np

files = {
    # C order, little-endian: tenjit's writer must reproduce these bytes exactly.
    "f4_2x3.npy": np.arange(6, dtype="<f4").reshape(2, 3) * np.float32(0.5) - np.float32(1),
    "f8_3.npy": np.array([1.5, -2.25, 1e300], dtype="<f8"),
    "i4_2x2.npy": np.array([[1, -2], [3, 2147483647]], dtype="<i4"),
    "i8_scalar.npy": np.array(-9000000000, dtype="<i8"),
    "b1_4.npy": np.array([True, False, False, True]),
    "f4_empty_0x3.npy": np.zeros((0, 3), dtype="<f4"),
    # Read only: Fortran order, big-endian.
    "f4_fortran_2x3.npy": np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
    "i4_fortran_2x3x4.npy": np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)),
    "f4_big_endian_3.npy": np.array([1.0, 2.5, -3.0], dtype=">f4"),
    "i8_big_endian_2x2.npy": np.array([[1, -2], [3, 1 << 40]], dtype=">i8"),
    "f2_2.npy": np.array([1, 2], dtype="<f2"),
    # Rejected: dtypes tenjit does not have.
    "u1_2.npy": np.array([1, 2], dtype="u1"),
    "structured_2.npy": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]),
}

for name, array in files.items():
    np.save(name, array)

# Format versions 2.0 and 3.0.
with open("f8_v2_2x2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([[0.25, -1.0], [3.0, 1e-300]]), version=(2, 0))
with open("i4_v3_3.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([7, 8, 9], dtype="<i4"), version=(3, 0))
