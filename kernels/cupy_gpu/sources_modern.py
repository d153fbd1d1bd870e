"""CUDA C sources of the modern-CNN kernels (batch norm, dropout, adaptive pooling), plain strings.

Compiled like ``sources.py``'s (``prelude(ctype)`` defines ``T`` and ``T_NEG_INF``), looked up by name
by ``_compile._module``. Batch norm runs one block per channel over the (N, C, L) layout; the rest
run one thread per output (or input) element. Scalars of type T (eps, scale) come in 1-element arrays.
"""

from __future__ import annotations

BN_BLOCK = 256  # threads per block of the per-channel batch-norm kernels (a power of two)

BATCHNORM = r"""
#define BN_BLOCK 256

// Sum over the block (blockDim.x == BN_BLOCK); every thread gets the result.
__device__ T block_reduce_sum(T v, T* buf)
{
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int half = BN_BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) buf[threadIdx.x] += buf[threadIdx.x + half];
        __syncthreads();
    }
    const T total = buf[0];
    __syncthreads();  // buf is reused by the next sum
    return total;
}

// Block c: mean[c], var[c] (biased, two-pass) over x[:, c, :], then y = (x - mean) * w / sqrt(var + eps) + b.
extern "C" __global__ void batch_norm_forward_train(
    const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias, const T* __restrict__ eps,
    T* __restrict__ y, T* __restrict__ mean, T* __restrict__ var, int N, int C, int L)
{
    __shared__ T buf[BN_BLOCK];
    const int c = blockIdx.x, count = N * L;
    T acc = 0;
    for (int k = threadIdx.x; k < count; k += BN_BLOCK) acc += x[((k / L) * C + c) * L + k % L];
    const T m = block_reduce_sum(acc, buf) / (T)count;
    acc = 0;
    for (int k = threadIdx.x; k < count; k += BN_BLOCK) {
        const T d = x[((k / L) * C + c) * L + k % L] - m;
        acc += d * d;
    }
    const T v = block_reduce_sum(acc, buf) / (T)count;
    if (threadIdx.x == 0) { mean[c] = m; var[c] = v; }
    const T scale = weight[c] / sqrt(v + eps[0]), shift = bias[c] - m * scale;
    for (int k = threadIdx.x; k < count; k += BN_BLOCK) {
        const int i = ((k / L) * C + c) * L + k % L;
        y[i] = x[i] * scale + shift;
    }
}

// One thread per element: y = (x - running_mean) * w / sqrt(running_var + eps) + b.
extern "C" __global__ void batch_norm_forward_eval(
    const T* __restrict__ x, const T* __restrict__ running_mean, const T* __restrict__ running_var,
    const T* __restrict__ weight, const T* __restrict__ bias, const T* __restrict__ eps, T* __restrict__ y,
    int total, int C, int L)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int c = (i / L) % C;
    const T scale = weight[c] / sqrt(running_var[c] + eps[0]);
    y[i] = (x[i] - running_mean[c]) * scale + bias[c];
}

// Block c: gbias[c] = sum gy, gweight[c] = sum gy * xhat, then gx (with the batch-statistics terms
// when training, else gy * w * invstd).
extern "C" __global__ void batch_norm_backward(
    const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ invstd,
    const T* __restrict__ weight, T* __restrict__ gx, T* __restrict__ gweight, T* __restrict__ gbias,
    int N, int C, int L, int training)
{
    __shared__ T buf[BN_BLOCK];
    const int c = blockIdx.x, count = N * L;
    const T m = mean[c], s = invstd[c];
    T acc_g = 0, acc_gxhat = 0;
    for (int k = threadIdx.x; k < count; k += BN_BLOCK) {
        const int i = ((k / L) * C + c) * L + k % L;
        acc_g += gy[i];
        acc_gxhat += gy[i] * (x[i] - m) * s;
    }
    const T sum_g = block_reduce_sum(acc_g, buf), sum_gxhat = block_reduce_sum(acc_gxhat, buf);
    if (threadIdx.x == 0) { gbias[c] = sum_g; gweight[c] = sum_gxhat; }
    const T scale = weight[c] * s, mean_g = sum_g / (T)count, mean_gxhat = sum_gxhat / (T)count;
    for (int k = threadIdx.x; k < count; k += BN_BLOCK) {
        const int i = ((k / L) * C + c) * L + k % L;
        gx[i] = training ? scale * (gy[i] - mean_g - (x[i] - m) * s * mean_gxhat) : gy[i] * scale;
    }
}
"""

DROPOUT = r"""
// y = x * scale where keep is set, else 0 (also dropout's backward, with gy for x).
extern "C" __global__ void dropout_mask(
    const T* __restrict__ x, const unsigned char* __restrict__ keep, const T* __restrict__ scale,
    T* __restrict__ y, int total)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    y[i] = keep[i] ? x[i] * scale[0] : (T)0;
}
"""

ADAPTIVE_POOL = r"""
// Bin i of n_out over n_in inputs: [floor(i * n_in / n_out), ceil((i + 1) * n_in / n_out)).
__device__ __forceinline__ int bin_start(int i, int n_in, int n_out) { return (i * n_in) / n_out; }
__device__ __forceinline__ int bin_end(int i, int n_in, int n_out) { return ((i + 1) * n_in + n_out - 1) / n_out; }

// One thread per output: the mean of its bin.
extern "C" __global__ void adaptive_avg_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y, int total, int H, int W, int OH, int OW)
{
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= total) return;
    const int j = o % OW, i = (o / OW) % OH, plane = o / (OW * OH);
    const int h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH), w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
    const T* xp = x + (size_t)plane * H * W;
    T acc = 0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) acc += xp[h * W + w];
    y[o] = acc / (T)((h1 - h0) * (w1 - w0));
}

// One thread per input pixel: the sum of gy / bin size over the bins containing it (a gather, no atomics).
extern "C" __global__ void adaptive_avg_pool2d_backward(
    const T* __restrict__ gy, T* __restrict__ gx, int total, int H, int W, int OH, int OW)
{
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= total) return;
    const int w = p % W, h = (p / W) % H, plane = p / (W * H);
    const T* gp = gy + (size_t)plane * OH * OW;
    T acc = 0;
    for (int i = (h * OH) / H; i < OH && bin_start(i, H, OH) <= h; ++i) {
        const int h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH);
        if (h >= h1) continue;
        for (int j = (w * OW) / W; j < OW && bin_start(j, W, OW) <= w; ++j) {
            const int w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
            if (w >= w1) continue;
            acc += gp[i * OW + j] / (T)((h1 - h0) * (w1 - w0));
        }
    }
    gx[p] = acc;
}

// One thread per output: the bin's first maximum (a NaN beats every number: the bin's last NaN, as torch).
extern "C" __global__ void adaptive_max_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ idx, int total, int H, int W, int OH, int OW)
{
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= total) return;
    const int j = o % OW, i = (o / OW) % OH, plane = o / (OW * OH);
    const int h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH), w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
    const T* xp = x + (size_t)plane * H * W;
    T best = xp[h0 * W + w0];
    int best_i = h0 * W + w0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) {
            const T v = xp[h * W + w];
            if (v > best || v != v) { best = v; best_i = h * W + w; }
        }
    y[o] = best;
    idx[o] = best_i;
}
"""

MODERN_SOURCES = {"BATCHNORM": BATCHNORM, "DROPOUT": DROPOUT, "ADAPTIVE_POOL": ADAPTIVE_POOL}
