// CPU emulation of the CUDA C subset that kernels/cupy_gpu/sources.py uses, for tests without a GPU.
//
// A kernel source is compiled by g++ with this header first. Blocks run one after the other. In a
// block, kernels without __syncthreads/__shfl run their threads one after the other; the others run
// one std::thread per CUDA thread, with std::barrier for __syncthreads and for each warp's shuffles.
// Dynamic shared memory is a malloc of exactly the launch's byte count (so AddressSanitizer, when
// enabled, catches any overflow), filled with garbage like real shared memory.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

using std::exp;
using std::log;
using std::max;
using std::min;
using std::tanh;

struct emu_uint3 { unsigned x, y, z; };
static thread_local emu_uint3 threadIdx, blockIdx;
static emu_uint3 blockDim, gridDim;
static thread_local unsigned char* emu_smem;  // the block's dynamic shared memory
static thread_local int emu_tid;              // linear thread index in the block
static bool emu_threaded;
static std::barrier<>* emu_block_barrier;
static std::vector<std::barrier<>*> emu_warp_barriers;
static double emu_warp_values[1024];
static std::mutex emu_atomic_mutex;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static  // one block runs at a time, so a static is the block's shared array
#define __align__(n) alignas(n)

static void emu_fail(const char* what) { fprintf(stderr, "cuda emulator: %s\n", what); abort(); }

static inline void __syncthreads() {
    if (!emu_threaded) emu_fail("__syncthreads in a kernel emulated sequentially");
    emu_block_barrier->arrive_and_wait();
}

template <typename V> static V __shfl_down_sync(unsigned, V v, int offset) {
    if (!emu_threaded) emu_fail("__shfl_down_sync in a kernel emulated sequentially");
    const int lane = emu_tid % 32, warp = emu_tid / 32;
    const int block_threads = blockDim.x * blockDim.y * blockDim.z;
    emu_warp_values[emu_tid] = (double)v;  // exact for float and double
    emu_warp_barriers[warp]->arrive_and_wait();
    V result = (lane + offset < 32 && emu_tid + offset < block_threads) ? (V)emu_warp_values[emu_tid + offset] : v;
    emu_warp_barriers[warp]->arrive_and_wait();
    return result;
}

template <typename V> static V atomicAdd(V* address, V value) {
    std::lock_guard<std::mutex> guard(emu_atomic_mutex);
    V old = *address;
    *address = old + value;
    return old;
}

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, sizeof d); return d; }

// Run `body` (one kernel call with its arguments bound) over the grid; returns 0, or an error code
// for a launch the GPU would refuse.
static int emu_run(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, size_t smem,
                   int threaded, const std::function<void()>& body) {
    const unsigned nt = bx * by * bz;
    if (nt == 0 || nt > 1024) return 1;
    if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) return 2;
    if (smem > 48 * 1024) return 3;  // above 48 KiB a kernel must opt in; ours do not
    blockDim = {bx, by, bz};
    gridDim = {gx, gy, gz};
    emu_threaded = threaded;
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y) for (unsigned x = 0; x < gx; ++x) {
        unsigned char* shared = (unsigned char*)malloc(smem ? smem : 1);
        memset(shared, 0xAB, smem ? smem : 1);
        const emu_uint3 block = {x, y, z};
        auto run_thread = [&, block](unsigned t) {
            blockIdx = block;
            threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
            emu_tid = (int)t;
            emu_smem = smem ? shared : nullptr;
            body();
        };
        if (!threaded) {
            for (unsigned t = 0; t < nt; ++t) run_thread(t);
        } else {
            std::barrier<> block_barrier(nt);
            emu_block_barrier = &block_barrier;
            emu_warp_barriers.clear();
            for (unsigned w = 0; w < (nt + 31) / 32; ++w)
                emu_warp_barriers.push_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < nt; ++t)
                threads.emplace_back([&, t] {
                    run_thread(t);
                    emu_warp_barriers[t / 32]->arrive_and_drop();  // a finished thread stops counting
                    emu_block_barrier->arrive_and_drop();
                });
            for (auto& thread : threads) thread.join();
            for (auto* barrier : emu_warp_barriers) delete barrier;
        }
        free(shared);
    }
    return 0;
}
