// tenjit's SIMT emulation: enough of CUDA to run the kernels `src/backend/cuda/codegen`
// generates on the host, compiled by g++ (-O1 -ffp-contract=off, never -ffast-math).
//
// What it models:
// * A launch runs its blocks one after the other, in a seeded random order. Each block's
//   threads are fibers (ucontext) on one OS thread; a fiber runs until it reaches a barrier
//   (`__syncthreads`, a warp shuffle) or returns, and the runnable fibers are resumed in a
//   freshly shuffled order each round, so a kernel that relies on its threads running in index
//   order (a missing barrier) sees another order and fails.
// * `__syncthreads()` waits for every thread of the block; a thread that returns while others
//   wait there, or a barrier no thread can pass (a shuffle some lanes never reach), is reported
//   as an error naming the kernel.
// * `__shfl_{down,up,xor,}_sync` exchange through a per-warp slot with CUDA's lane semantics
//   (a source lane outside the `width` segment yields the caller's own value); the mask must
//   name exactly the warp's threads.
// * `__shared__` variables live in one ELF section, `tj_shared`, filled with a poison byte
//   (0xFF: NaN for floats, or 0xAB) before every block, so a read before a write shows;
//   dynamic shared memory is a buffer of the launch's size, poisoned the same way.
// * Float intrinsics (`__fmul_rn`, `__fdiv_rn`, `__fsqrt_rn` and the `__d*` forms) are the
//   host's IEEE arithmetic, never contracted into FMA; math functions are the host's libm
//   (within the CUDA library's ulp bounds of the same results, not bit for bit).
//
// What it cannot model: races between blocks (blocks never overlap, so a kernel that needs
// two blocks to communicate, or whose blocks race on global memory, is not caught); memory
// ordering and atomics' contention (an atomic is a plain read-modify-write here); the
// hardware's flush-to-zero or fast-math modes (the generator uses neither).

#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <random>
#include <vector>

// ---- CUDA C keywords -----------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Every `__shared__` variable is a static in the poisoned section (blocks run one at a time,
// so one copy serves every block).
#define __shared__ __attribute__((section("tj_shared"))) static
// Dynamic shared memory (`extern __shared__`, which the prelude's `TJ_DYNAMIC_SHARED` declares
// on the device) is one host buffer of the launch's size, poisoned before every block as the
// static shared memory is.
static std::vector<unsigned char> tj_dynamic_storage;
#define TJ_DYNAMIC_SHARED(name) unsigned char* const name = tj_dynamic_storage.data()

struct tj_dim3 {
    unsigned int x, y, z;
};

// ---- the block's fibers --------------------------------------------------------------------

enum tj_state { TJ_RUNNABLE, TJ_AT_SYNCTHREADS, TJ_AT_WARP, TJ_DONE };

struct tj_fiber {
    ucontext_t ctx;
    tj_dim3 idx;
    tj_state state;
    uint64_t slot;        // this lane's value in the current shuffle
    unsigned warp_round;  // which warp barrier it waits at (each lane counts its own)
};

static const unsigned TJ_MAX_BLOCK = 1024;
static const size_t TJ_STACK = 64 * 1024;

static tj_fiber tj_fibers[TJ_MAX_BLOCK];
static char* tj_stacks[TJ_MAX_BLOCK];
static tj_fiber* tj_current;
static ucontext_t tj_scheduler;
static std::mt19937_64 tj_rng;
static const char* tj_kernel_name = "?";
static void (*tj_entry)(void**);
static void** tj_entry_args;

static tj_dim3 blockIdx, blockDim, gridDim;
#define threadIdx (tj_current->idx)

extern char __start_tj_shared[] __attribute__((weak));
extern char __stop_tj_shared[] __attribute__((weak));

[[noreturn]] static void tj_die(const char* what) {
    fprintf(stderr, "emulation error in kernel %s (block %u): %s\n", tj_kernel_name, blockIdx.x, what);
    exit(3);
}

// Returns to the scheduler until this fiber is runnable again.
static void tj_yield() {
    tj_fiber* me = tj_current;
    if (swapcontext(&me->ctx, &tj_scheduler) != 0) tj_die("swapcontext failed");
    tj_current = me;
}

static void tj_fiber_main() {
    tj_entry(tj_entry_args);
    tj_current->state = TJ_DONE;
    // uc_link returns to the scheduler.
}

__device__ void __syncthreads() {
    tj_current->state = TJ_AT_SYNCTHREADS;
    tj_yield();
}

// The bits of the threads of the caller's warp that exist in this block.
static unsigned tj_warp_lanes() {
    unsigned base = tj_current->idx.x & ~31u;
    unsigned n = std::min(32u, blockDim.x - base);
    return n == 32 ? 0xffffffffu : ((1u << n) - 1u);
}

static void tj_warp_barrier(unsigned mask) {
    if (mask != tj_warp_lanes()) tj_die("a warp-synchronous call whose mask is not the warp's threads");
    tj_current->state = TJ_AT_WARP;
    tj_current->warp_round++;
    tj_yield();
}

__device__ void __syncwarp(unsigned mask = 0xffffffffu) { tj_warp_barrier(mask); }

// One exchange: every lane deposits `v`, then reads lane `src(lane)` (or its own value when
// `src` returns a negative number).
template <typename T, typename F>
static T tj_shuffle(unsigned mask, T v, F src) {
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    tj_current->slot = bits;
    tj_warp_barrier(mask);
    unsigned lane = tj_current->idx.x & 31u, base = tj_current->idx.x & ~31u;
    int from = src(lane);
    T out = v;
    if (from >= 0) {
        if (base + (unsigned)from >= blockDim.x) tj_die("a shuffle reads a lane outside the block");
        uint64_t b = tj_fibers[base + (unsigned)from].slot;
        memcpy(&out, &b, sizeof(T));
    }
    tj_warp_barrier(mask);  // every lane has read before any lane deposits again
    return out;
}

template <typename T>
__device__ T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return tj_shuffle(mask, v, [&](unsigned lane) {
        unsigned w = (unsigned)width;
        return (lane % w) + delta < w ? (int)(lane + delta) : -1;
    });
}
template <typename T>
__device__ T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return tj_shuffle(mask, v, [&](unsigned lane) {
        return (lane % (unsigned)width) >= delta ? (int)(lane - delta) : -1;
    });
}
template <typename T>
__device__ T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return tj_shuffle(mask, v, [&](unsigned lane) {
        // A lane may read an earlier segment of `width` lanes, not a later one.
        unsigned w = (unsigned)width, to = lane ^ (unsigned)lane_mask;
        return to / w <= lane / w ? (int)to : (int)lane;
    });
}
template <typename T>
__device__ T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    return tj_shuffle(mask, v, [&](unsigned lane) {
        unsigned w = (unsigned)width;
        return (int)((lane / w) * w + ((unsigned)src_lane % w));
    });
}

// ---- intrinsics ----------------------------------------------------------------------------

__device__ inline float __fadd_rn(float a, float b) { return a + b; }
__device__ inline float __fsub_rn(float a, float b) { return a - b; }
__device__ inline float __fmul_rn(float a, float b) { return a * b; }
__device__ inline float __fdiv_rn(float a, float b) { return a / b; }
__device__ inline float __fsqrt_rn(float a) { return sqrtf(a); }
__device__ inline double __dadd_rn(double a, double b) { return a + b; }
__device__ inline double __dsub_rn(double a, double b) { return a - b; }
__device__ inline double __dmul_rn(double a, double b) { return a * b; }
__device__ inline double __ddiv_rn(double a, double b) { return a / b; }
__device__ inline double __dsqrt_rn(double a) { return sqrt(a); }

__device__ inline float __int_as_float(int x) { float f; memcpy(&f, &x, 4); return f; }
__device__ inline int __float_as_int(float f) { int x; memcpy(&x, &f, 4); return x; }
__device__ inline double __longlong_as_double(long long x) { double d; memcpy(&d, &x, 8); return d; }
__device__ inline long long __double_as_longlong(double d) { long long x; memcpy(&x, &d, 8); return x; }

// Truncating conversions as PTX's cvt.rzi: saturating, NaN to 0.
template <typename I, typename F>
static I tj_to_int_rz(F x, I lo, I hi) {
    if (x != x) return 0;
    if (x >= -(F)lo) return hi;  // -(F)lo is 2^(bits-1), exactly representable
    if (x <= (F)lo) return lo;
    return (I)x;
}
__device__ inline int __float2int_rz(float x) { return tj_to_int_rz<int, float>(x, INT32_MIN, INT32_MAX); }
__device__ inline long long __float2ll_rz(float x) { return tj_to_int_rz<long long, float>(x, INT64_MIN, INT64_MAX); }
__device__ inline int __double2int_rz(double x) { return tj_to_int_rz<int, double>(x, INT32_MIN, INT32_MAX); }
__device__ inline long long __double2ll_rz(double x) { return tj_to_int_rz<long long, double>(x, INT64_MIN, INT64_MAX); }

__device__ inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }

// Atomics are plain read-modify-writes: only one fiber runs at a time.
__device__ inline int atomicCAS(int* p, int cmp, int v) { int old = *p; if (old == cmp) *p = v; return old; }
__device__ inline int atomicAdd(int* p, int v) { int old = *p; *p = (int)((unsigned)old + (unsigned)v); return old; }
__device__ inline float atomicAdd(float* p, float v) { float old = *p; *p = old + v; return old; }
__device__ inline double atomicAdd(double* p, double v) { double old = *p; *p = old + v; return old; }

// ---- launching -----------------------------------------------------------------------------

// A kernel of the driver's table: its name and a trampoline that casts the argument pointers
// to the kernel's parameter types and calls it.
struct tj_kernel_entry {
    const char* name;
    void (*call)(void**);
};

// Resumes fibers until every one of the block has returned: each round runs the runnable
// fibers in a shuffled order, then releases the barriers every participant has reached.
static void tj_run_block(unsigned n) {
    for (unsigned t = 0; t < n; ++t) {
        tj_fiber& f = tj_fibers[t];
        if (!tj_stacks[t]) tj_stacks[t] = (char*)malloc(TJ_STACK);
        if (getcontext(&f.ctx) != 0) tj_die("getcontext failed");
        f.ctx.uc_stack.ss_sp = tj_stacks[t];
        f.ctx.uc_stack.ss_size = TJ_STACK;
        f.ctx.uc_link = &tj_scheduler;
        makecontext(&f.ctx, tj_fiber_main, 0);
        f.idx = {t, 0, 0};
        f.state = TJ_RUNNABLE;
        f.warp_round = 0;
    }
    std::vector<unsigned> order(n);
    for (;;) {
        order.clear();
        for (unsigned t = 0; t < n; ++t)
            if (tj_fibers[t].state == TJ_RUNNABLE) order.push_back(t);
        std::shuffle(order.begin(), order.end(), tj_rng);
        for (unsigned t : order) {
            tj_current = &tj_fibers[t];
            if (swapcontext(&tj_scheduler, &tj_fibers[t].ctx) != 0) tj_die("swapcontext failed");
        }
        // Release what can be released.
        unsigned done = 0, at_sync = 0;
        bool released = false;
        for (unsigned t = 0; t < n; ++t) {
            done += tj_fibers[t].state == TJ_DONE;
            at_sync += tj_fibers[t].state == TJ_AT_SYNCTHREADS;
        }
        if (done == n) return;
        if (at_sync == n) {
            for (unsigned t = 0; t < n; ++t) tj_fibers[t].state = TJ_RUNNABLE;
            continue;
        }
        if (at_sync > 0 && at_sync + done == n) tj_die("__syncthreads() reached by some threads after others returned");
        for (unsigned base = 0; base < n; base += 32) {
            unsigned end = std::min(n, base + 32), waiting = 0;
            for (unsigned t = base; t < end; ++t) waiting += tj_fibers[t].state == TJ_AT_WARP;
            if (waiting == end - base) {
                for (unsigned t = base; t < end; ++t) {
                    if (tj_fibers[t].warp_round != tj_fibers[base].warp_round)
                        tj_die("the lanes of a warp wait at different warp barriers");
                    tj_fibers[t].state = TJ_RUNNABLE;
                }
                released = true;
            }
        }
        if (!released) tj_die("deadlock: threads wait at barriers that the others never reach");
    }
}

// Launches `entry` (which unpacks `args` and calls the kernel) over `grid` blocks of `block`
// threads.
static void tj_launch(const char* name, void (*entry)(void**), void** args, unsigned grid, unsigned block,
                      unsigned shared_bytes) {
    tj_kernel_name = name;
    if (block == 0 || block > TJ_MAX_BLOCK) tj_die("a block size outside 1..=1024");
    // At least 16 bytes, so an empty one still has an address; 16-byte aligned (`new`).
    tj_dynamic_storage.assign(std::max(shared_bytes, 16u), 0);
    tj_entry = entry;
    tj_entry_args = args;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    std::vector<unsigned> blocks(grid);
    for (unsigned b = 0; b < grid; ++b) blocks[b] = b;
    std::shuffle(blocks.begin(), blocks.end(), tj_rng);
    for (unsigned b : blocks) {
        blockIdx = {b, 0, 0};
        if (__start_tj_shared && __stop_tj_shared)
            memset(__start_tj_shared, (tj_rng() & 1) ? 0xFF : 0xAB, (size_t)(__stop_tj_shared - __start_tj_shared));
        memset(tj_dynamic_storage.data(), (tj_rng() & 1) ? 0xFF : 0xAB, tj_dynamic_storage.size());
        tj_run_block(block);
    }
}
