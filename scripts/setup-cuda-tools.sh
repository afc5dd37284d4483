#!/usr/bin/env bash
# Installs the CUDA tools tenjit's CUDA backend compiles with, from PyPI, with no GPU and no
# system CUDA needed:
#
#   * NVRTC (nvidia-cuda-nvrtc-cu12): CUDA C -> PTX, loaded by tenjit at run time;
#   * ptxas (nvidia-cuda-nvcc-cu12): the PTX assembler the tests check generated PTX with.
#
# Both are pinned to the same release: ptxas must be at least as new as the NVRTC that wrote
# the PTX. Generated code includes no header, so the CUDA runtime headers are not installed.
#
# Installs into ${TENJIT_CUDA_TOOLS:-$HOME/.cache/tenjit/cuda-tools}, the directory tenjit
# searches first (TENJIT_CUDA_TOOLS) or second (the default). Idempotent: when the pinned
# versions are already there it only prints where they are.
set -euo pipefail

VERSION="12.9.86"
DIR="${TENJIT_CUDA_TOOLS:-$HOME/.cache/tenjit/cuda-tools}"
STAMP="$DIR/.tenjit-cuda-tools-$VERSION"
NVRTC="$DIR/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
PTXAS="$DIR/nvidia/cuda_nvcc/bin/ptxas"

if [[ -f "$STAMP" && -f "$NVRTC" && -x "$PTXAS" ]]; then
    echo "CUDA tools $VERSION already installed in $DIR"
else
    echo "installing CUDA tools $VERSION (NVRTC, ptxas) into $DIR"
    mkdir -p "$DIR"
    # --upgrade replaces an older pinned release in the same directory.
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --upgrade \
        --target "$DIR" \
        "nvidia-cuda-nvrtc-cu12==$VERSION" \
        "nvidia-cuda-nvcc-cu12==$VERSION"
    if [[ ! -f "$NVRTC" || ! -x "$PTXAS" ]]; then
        echo "error: the wheels did not provide $NVRTC and $PTXAS" >&2
        exit 1
    fi
    # Keep what tenjit uses: libnvrtc and its builtins, and ptxas. The wheels also carry a
    # second build of NVRTC (the .alt libraries), NVVM and nvcc's headers, 170 MB that nothing
    # here loads.
    rm -rf "$DIR"/nvidia/cuda_nvrtc/lib/*.alt.so* "$DIR"/nvidia/cuda_nvcc/nvvm "$DIR"/nvidia/cuda_nvcc/include
    rm -f "$DIR"/.tenjit-cuda-tools-*
    touch "$STAMP"
fi

echo "  NVRTC: $NVRTC"
echo "  ptxas: $PTXAS ($("$PTXAS" --version | tail -n 1))"
if [[ -z "${TENJIT_CUDA_TOOLS:-}" ]]; then
    echo "tenjit finds this directory by default; set TENJIT_CUDA_TOOLS=$DIR to use another."
fi
