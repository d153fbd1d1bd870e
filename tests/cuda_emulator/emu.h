// CPU emulation of the CUDA C subset that kernels/cupy_gpu/sources.py uses, for tests without a GPU.
//
// A kernel source is compiled by g++ with this header first. Blocks run one after the other, in a shuffled
// order (a GPU promises none). In a block, kernels without __syncthreads/__shfl run their threads one after
// the other, also shuffled; the others run one thread per CUDA thread (emu_run_threads), with std::barrier for
// __syncthreads and for each warp's shuffles. Dynamic shared memory is a malloc of exactly the launch's
// byte count (so AddressSanitizer, when enabled, catches any overflow), filled with NaN (all bits set, a NaN
// in float and in double), so a tile element no thread wrote poisons the result instead of adding a
// number too small to see. (Static __shared__ arrays are plain statics: zero, then the last block's values.)
//
// A kernel's non-const pointer parameters (its outputs) are emu_out<V> instead of V*: each element
// remembers the CUDA thread that last stored to it, so two threads of one launch storing to the same
// element without atomicAdd (a race on a GPU, however the emulator orders them) is reported, and so is an
// index outside the array. Stores through a raw pointer copied from the parameter are not watched.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <numeric>
#include <pthread.h>
#include <random>
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
static thread_local long long emu_thread;  // the CUDA thread's index in the grid: block * threads per block + tid
static std::mutex emu_error_mutex;
static char emu_error[512];  // the launch's first error ("" if none)
static unsigned long long emu_launches;  // varies the shuffle from one launch to the next

extern "C" const char* emu_last_error() { return emu_error; }

static void emu_report(const char* what, const char* name, long long i, long long n, long long other) {
    std::lock_guard<std::mutex> guard(emu_error_mutex);
    if (emu_error[0]) return;
    if (other >= 0)
        snprintf(emu_error, sizeof emu_error, "%s[%lld] stored by CUDA threads %lld and %lld of one launch "
                 "without atomicAdd (a race on a GPU)", name, i, other, emu_thread);
    else
        snprintf(emu_error, sizeof emu_error, "%s[%lld] %s (the array has %lld elements)", name, i, what, n);
}

// One element of an output array: loads and stores are bounds-checked, stores are owned by one thread.
template <typename V> struct emu_ref {
    V* data;
    long long* owner;  // per element: the last thread that stored to it, or -1
    const char* name;
    long long i, n;

    V load() const {
        if (i < 0 || i >= n) { emu_report("read out of bounds", name, i, n, -1); return V(0); }
        return data[i];
    }
    void store(V v) {
        if (i < 0 || i >= n) { emu_report("written out of bounds", name, i, n, -1); return; }
        const long long previous = __atomic_exchange_n(owner + i, emu_thread, __ATOMIC_RELAXED);
        if (previous != -1 && previous != emu_thread) emu_report("", name, i, n, previous);
        data[i] = v;
    }
    operator V() const { return load(); }
    emu_ref& operator=(V v) { store(v); return *this; }
    emu_ref& operator=(const emu_ref& other) { store(other.load()); return *this; }
    emu_ref& operator+=(V v) { store(load() + v); return *this; }
    emu_ref& operator-=(V v) { store(load() - v); return *this; }
    emu_ref& operator*=(V v) { store(load() * v); return *this; }
};

// An output pointer parameter: pointer arithmetic and indexing as on a V*, elements as emu_ref.
template <typename V> struct emu_out {
    V* data;
    long long* owner;
    long long n;
    const char* name;
    long long offset;

    template <typename I> emu_out operator+(I k) const { return {data, owner, n, name, offset + (long long)k}; }
    template <typename I> emu_out operator-(I k) const { return {data, owner, n, name, offset - (long long)k}; }
    template <typename I> emu_ref<V> operator[](I k) const { return {data, owner, name, offset + (long long)k, n}; }
    emu_ref<V> operator*() const { return (*this)[0]; }
    operator V*() const { return data + offset; }  // a raw copy: stores through it are not watched
};

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

template <typename V> static V atomicAdd(emu_out<V> address, V value) {
    if (address.offset < 0 || address.offset >= address.n) {
        emu_report("atomicAdd out of bounds", address.name, address.offset, address.n, -1);
        return V(0);
    }
    return atomicAdd(address.data + address.offset, value);
}

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }
static inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, sizeof d); return d; }

// One POSIX thread per body, with small stacks (a kernel's locals are a few registers' worth): creating
// a block's threads is most of the emulator's time, and an 8 MiB default stack each makes it slower.
static void* emu_thread_main(void* body) {
    (*static_cast<std::function<void()>*>(body))();
    return nullptr;
}

static void emu_run_threads(std::vector<std::function<void()>>& bodies) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    std::vector<pthread_t> threads(bodies.size());
    for (size_t i = 0; i < bodies.size(); ++i)
        if (pthread_create(&threads[i], &attr, emu_thread_main, &bodies[i]) != 0) emu_fail("pthread_create failed");
    for (pthread_t thread : threads) pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
}

static std::vector<unsigned long long> emu_shuffled(unsigned long long count, std::mt19937_64& rng) {
    std::vector<unsigned long long> order(count);
    std::iota(order.begin(), order.end(), 0ull);
    std::shuffle(order.begin(), order.end(), rng);
    return order;
}

// Run `body` (one kernel call with its arguments bound) over the grid; returns 0, an error code for a
// launch the GPU would refuse (1-3), or 4 when a store raced or an index left its array (emu_last_error).
// CUDA_EMULATOR_SEED (default 0) seeds the order of blocks and threads.
static int emu_run(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, size_t smem,
                   int threaded, const std::function<void()>& body) {
    const unsigned nt = bx * by * bz;
    if (nt == 0 || nt > 1024) return 1;
    if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) return 2;
    if (smem > 48 * 1024) return 3;  // above 48 KiB a kernel must opt in; ours do not
    blockDim = {bx, by, bz};
    gridDim = {gx, gy, gz};
    emu_threaded = threaded;
    emu_error[0] = 0;
    const char* seed = getenv("CUDA_EMULATOR_SEED");
    std::mt19937_64 rng((seed ? strtoull(seed, nullptr, 10) : 0ull) * 1000003ull + emu_launches++);
    for (unsigned long long b : emu_shuffled((unsigned long long)gx * gy * gz, rng)) {
        unsigned char* shared = (unsigned char*)malloc(smem ? smem : 1);
        memset(shared, 0xFF, smem ? smem : 1);  // NaN in float and double
        const unsigned long long plane = (unsigned long long)gx * gy;
        const emu_uint3 block = {(unsigned)(b % gx), (unsigned)((b / gx) % gy), (unsigned)(b / plane)};
        const std::vector<unsigned long long> threads_order = emu_shuffled(nt, rng);
        auto run_thread = [&, block, b](unsigned t) {
            blockIdx = block;
            threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
            emu_tid = (int)t;
            emu_thread = (long long)(b * nt + t);
            emu_smem = smem ? shared : nullptr;
            body();
        };
        if (!threaded) {
            for (unsigned long long t : threads_order) run_thread((unsigned)t);
        } else {
            std::barrier<> block_barrier(nt);
            emu_block_barrier = &block_barrier;
            emu_warp_barriers.clear();
            for (unsigned w = 0; w < (nt + 31) / 32; ++w)
                emu_warp_barriers.push_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
            std::vector<std::function<void()>> bodies;
            bodies.reserve(nt);
            for (unsigned long long order : threads_order)
                bodies.emplace_back([&, t = (unsigned)order] {
                    run_thread(t);
                    emu_warp_barriers[t / 32]->arrive_and_drop();  // a finished thread stops counting
                    emu_block_barrier->arrive_and_drop();
                });
            emu_run_threads(bodies);
            for (auto* barrier : emu_warp_barriers) delete barrier;
        }
        free(shared);
    }
    return emu_error[0] ? 4 : 0;
}
