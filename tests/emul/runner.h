// The emulation's driver: runs the launches a job file lists (written by
// `tests/emul/mod.rs`) and writes back each case's error word and outputs.
//
// Included after the kernels and `tj_kernels`, the table of {name, trampoline} the test
// renders (a trampoline casts the argument pointers to the kernel's parameter types).
//
// Usage: emul SEED JOB OUT. Job (little endian): u32 cases; per case: u32 buffers, per buffer
// u64 bytes, u8 is_input and, for an input, its bytes; u32 launches, per launch u32 kernel,
// grid, block, shared bytes, arguments, then per argument an i32 buffer (-1: the error word;
// -2: a size parameter, whose i64 value follows);
// u32 outputs, per output a u32 buffer and its u64 bytes. Out: per case, the i32 error word, then each output's
// bytes. Temps start poisoned (0xFF bytes, as uninitialized device memory might be).

#pragma once

static FILE* tj_job;

static void tj_read(void* p, size_t n) {
    if (n && fread(p, 1, n, tj_job) != n) {
        fprintf(stderr, "emulation: truncated job file\n");
        exit(2);
    }
}
static uint32_t tj_read_u32() { uint32_t v; tj_read(&v, 4); return v; }

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SEED JOB OUT\n", argv[0]);
        return 2;
    }
    tj_rng.seed(strtoull(argv[1], nullptr, 10));
    tj_job = fopen(argv[2], "rb");
    FILE* out = fopen(argv[3], "wb");
    if (!tj_job || !out) {
        fprintf(stderr, "emulation: cannot open %s or %s\n", argv[2], argv[3]);
        return 2;
    }
    const size_t count = sizeof(tj_kernels) / sizeof(tj_kernels[0]);
    uint32_t cases = tj_read_u32();
    for (uint32_t c = 0; c < cases; ++c) {
        uint32_t nbuf = tj_read_u32();
        std::vector<std::vector<unsigned char>> bufs(nbuf);
        for (auto& b : bufs) {
            uint64_t bytes;
            tj_read(&bytes, 8);
            unsigned char is_input;
            tj_read(&is_input, 1);
            // At least one byte, so an empty buffer still has an address.
            b.assign(bytes ? bytes : 1, 0xFF);
            if (is_input) tj_read(b.data(), bytes);
        }
        int err = 0;
        uint32_t launches = tj_read_u32();
        for (uint32_t l = 0; l < launches; ++l) {
            uint32_t k = tj_read_u32(), grid = tj_read_u32(), block = tj_read_u32(), shared = tj_read_u32(), nargs = tj_read_u32();
            std::vector<void*> args(nargs);
            // The size parameters' values, where their arguments point (sized up front, so
            // the addresses stay put).
            std::vector<long long> sizes(nargs);
            for (uint32_t j = 0; j < nargs; ++j) {
                int32_t id;
                tj_read(&id, 4);
                if (id == -2) {
                    tj_read(&sizes[j], 8);
                    args[j] = (void*)&sizes[j];
                } else {
                    args[j] = id < 0 ? (void*)&err : (void*)bufs.at((size_t)id).data();
                }
            }
            if (k >= count) {
                fprintf(stderr, "emulation: no kernel %u\n", k);
                return 2;
            }
            tj_launch(tj_kernels[k].name, tj_kernels[k].call, args.data(), grid, block, shared);
        }
        fwrite(&err, 4, 1, out);
        uint32_t outs = tj_read_u32();
        for (uint32_t o = 0; o < outs; ++o) {
            uint32_t id = tj_read_u32();
            uint64_t bytes;
            tj_read(&bytes, 8);
            fwrite(bufs.at(id).data(), 1, bytes, out);
        }
    }
    fclose(out);
    return 0;
}
