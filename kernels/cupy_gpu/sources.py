"""CUDA C sources of the CuPy backend, as plain strings (no cupy import here).

Each source is compiled once per dtype by ``kernels.cupy_gpu._compile``: ``prelude(ctype)`` is
prepended, which defines the scalar type ``T`` (``float`` or ``double``) and ``T_NEG_INF``.
Every kernel is ``extern "C"`` and indexes with 32-bit ints (the Python wrappers check sizes).
Without a GPU, ``tests/test_cupy_compile.py`` compiles all of them with nvcc and NVRTC, and
``tests/test_cuda_emulator.py`` runs the kernel tests on the CPU through ``tests/cuda_emulator/``.

Layouts are C-contiguous NCHW; ``KK = KH * KW``; ``s`` is a sample index inside a batch chunk.
"""

from __future__ import annotations

CTYPES = {"float32": "float", "float64": "double"}

_NEG_INF = {
    "float": "__int_as_float((int)0xff800000u)",
    "double": "__longlong_as_double((long long)0xfff0000000000000ull)",
}


def prelude(ctype: str) -> str:
    """The lines that make a source compile for scalar type ``ctype`` ('float' or 'double')."""
    return f"typedef {ctype} T;\n#define T_NEG_INF ({_NEG_INF[ctype]})\n"


# Channels of output (forward) or input (backward-input) each thread of a direct conv block keeps in
# registers; the Python wrappers use the same number to size the grid.
DIRECT_CHANNEL_TILE = 8

_COMMON = r"""
// Floor division for a possibly negative numerator and a positive divisor.
__device__ __forceinline__ int floordiv(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
"""

# --------------------------------------------------------------------------------------------
# im2col / col2im. col is (C*KH*KW, n*OH*OW): row (c, kh, kw), column (sample, oh, ow), so one
# GEMM covers a whole batch chunk.
IM2COL = (
    _COMMON
    + r"""
extern "C" __global__ void im2col(
    const T* __restrict__ x, T* __restrict__ col, int n, int C, int H, int W, int KH, int KW,
    int OH, int OW, int sh, int sw, int ph, int pw, int dh, int dw)
{
    const int L = OH * OW, NL = n * L;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= C * KH * KW * NL) return;
    const int row = idx / NL, pos = idx - row * NL;
    const int s = pos / L, l = pos - s * L;
    const int oh = l / OW, ow = l - oh * OW;
    const int kw = row % KW, kh = (row / KW) % KH, c = row / (KW * KH);
    const int h = oh * sh - ph + kh * dh, w = ow * sw - pw + kw * dw;
    col[idx] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((s * C + c) * H + h) * W + w] : (T)0;
}

// The adjoint of im2col as a gather: each input pixel sums the columns that read it (no atomics).
extern "C" __global__ void col2im(
    const T* __restrict__ col, T* __restrict__ gx, int n, int C, int H, int W, int KH, int KW,
    int OH, int OW, int sh, int sw, int ph, int pw, int dh, int dw)
{
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * C * H * W) return;
    const int w = idx % W, h = (idx / W) % H, c = (idx / (W * H)) % C, s = idx / (W * H * C);
    const int L = OH * OW, NL = n * L;
    T acc = 0;
    for (int kh = 0; kh < KH; ++kh) {
        const int th = h + ph - kh * dh;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        const int oh = th / sh;
        for (int kw = 0; kw < KW; ++kw) {
            const int tw = w + pw - kw * dw;
            if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
            acc += col[((c * KH + kh) * KW + kw) * NL + s * L + oh * OW + tw / sw];
        }
    }
    gx[idx] = acc;
}
"""
)

# --------------------------------------------------------------------------------------------
# Direct convolution: tiled kernels that never build the unfolded matrix.
CONV_DIRECT = (
    _COMMON
    + r"""
#define CT_REG 8  // == DIRECT_CHANNEL_TILE

// y[s,o,oh,ow] = b[o] + sum_{c,kh,kw} x[s,c,oh*sh-ph+kh*dh, ow*sw-pw+kw*dw] * w[o,c,kh,kw]
// Block (TW, TH): a TH x TW tile of output pixels of one sample, for CT_REG output channels
// (accumulated in registers). Per chunk of CC input channels, the block stages the weights
// (smem_w) and the input tile the output tile reads (smem_x, IH_T x IW_T) in shared memory;
// a flag off means that operand is read from global memory (huge kernels or dilations).
// grid.x = N * tiles_h * tiles_w, grid.y = ceil(O / CT_REG).
extern "C" __global__ void conv2d_direct_forward(
    const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
    int has_bias, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int sh, int sw, int ph, int pw, int dh, int dw,
    int tiles_h, int tiles_w, int CC, int IH_T, int IW_T, int smem_w, int smem_x)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int KK = KH * KW;
    T* w_s = reinterpret_cast<T*>(smem_raw);           // [CC][CT_REG][KK]
    T* x_s = w_s + (smem_w ? CC * CT_REG * KK : 0);    // [CC][IH_T][IW_T]
    const int TW = blockDim.x, TH = blockDim.y, nthreads = TW * TH;
    const int tid = threadIdx.y * TW + threadIdx.x;
    const int tile = blockIdx.x % (tiles_h * tiles_w), s = blockIdx.x / (tiles_h * tiles_w);
    const int oh0 = (tile / tiles_w) * TH, ow0 = (tile % tiles_w) * TW;
    const int oh = oh0 + threadIdx.y, ow = ow0 + threadIdx.x;
    const int ih0 = oh0 * sh - ph, iw0 = ow0 * sw - pw;
    const int o0 = blockIdx.y * CT_REG, jmax = min(CT_REG, O - o0);
    const T* xs = x + (size_t)s * C * H * W;

    T acc[CT_REG];
#pragma unroll
    for (int j = 0; j < CT_REG; ++j) acc[j] = (has_bias && j < jmax) ? b[o0 + j] : (T)0;

    for (int c0 = 0; c0 < C; c0 += CC) {
        const int cc_n = min(CC, C - c0);
        if (smem_w) {
            for (int i = tid; i < cc_n * CT_REG * KK; i += nthreads) {
                const int k = i % KK, j = (i / KK) % CT_REG, cc = i / (KK * CT_REG);
                w_s[i] = j < jmax ? w[((o0 + j) * C + c0 + cc) * KK + k] : (T)0;
            }
        }
        if (smem_x) {
            for (int i = tid; i < cc_n * IH_T * IW_T; i += nthreads) {
                const int iw = i % IW_T, ih = (i / IW_T) % IH_T, cc = i / (IW_T * IH_T);
                const int h = ih0 + ih, ww = iw0 + iw;
                x_s[i] = (h >= 0 && h < H && ww >= 0 && ww < W) ? xs[((c0 + cc) * H + h) * W + ww] : (T)0;
            }
        }
        __syncthreads();
        if (oh < OH && ow < OW) {
            for (int cc = 0; cc < cc_n; ++cc) {
                for (int kh = 0; kh < KH; ++kh) {
                    for (int kw = 0; kw < KW; ++kw) {
                        T v;
                        if (smem_x) {
                            v = x_s[(cc * IH_T + threadIdx.y * sh + kh * dh) * IW_T + threadIdx.x * sw + kw * dw];
                        } else {
                            const int h = oh * sh - ph + kh * dh, ww = ow * sw - pw + kw * dw;
                            v = (h >= 0 && h < H && ww >= 0 && ww < W) ? xs[((c0 + cc) * H + h) * W + ww] : (T)0;
                        }
                        const T* wp = smem_w ? w_s + cc * CT_REG * KK + kh * KW + kw
                                             : w + ((size_t)o0 * C + c0 + cc) * KK + kh * KW + kw;
                        const int wstride = smem_w ? KK : C * KK;
#pragma unroll
                        for (int j = 0; j < CT_REG; ++j)
                            if (j < jmax) acc[j] += v * wp[j * wstride];
                    }
                }
            }
        }
        __syncthreads();
    }
    if (oh < OH && ow < OW) {
#pragma unroll
        for (int j = 0; j < CT_REG; ++j)
            if (j < jmax) y[(((size_t)s * O + o0 + j) * OH + oh) * OW + ow] = acc[j];
    }
}

// gx[s,c,h,w] = sum over (o, kh, kw) with oh*sh = h+ph-kh*dh and ow*sw = w+pw-kw*dw of
// gy[s,o,oh,ow] * w[o,c,kh,kw]. Block (TW, TH): a TH x TW tile of input pixels of one sample,
// for CT_REG input channels in registers. Per chunk of OC output channels it stages the weights
// (smem_w) and the gy tile those pixels read (smem_g, GH_T x GW_T, from row oh_start / column
// ow_start) in shared memory. grid.x = N * tiles_h * tiles_w, grid.y = ceil(C / CT_REG).
extern "C" __global__ void conv2d_direct_backward_input(
    const T* __restrict__ gy, const T* __restrict__ w, T* __restrict__ gx,
    int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int sh, int sw, int ph, int pw, int dh, int dw,
    int tiles_h, int tiles_w, int OC, int GH_T, int GW_T, int smem_w, int smem_g)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int KK = KH * KW;
    T* w_s = reinterpret_cast<T*>(smem_raw);           // [OC][CT_REG][KK]
    T* g_s = w_s + (smem_w ? OC * CT_REG * KK : 0);    // [OC][GH_T][GW_T]
    const int TW = blockDim.x, TH = blockDim.y, nthreads = TW * TH;
    const int tid = threadIdx.y * TW + threadIdx.x;
    const int tile = blockIdx.x % (tiles_h * tiles_w), s = blockIdx.x / (tiles_h * tiles_w);
    const int h0 = (tile / tiles_w) * TH, w0 = (tile % tiles_w) * TW;
    const int h = h0 + threadIdx.y, ww = w0 + threadIdx.x;
    // First gy row/column any pixel of the tile can read (rounded down, so offsets are >= 0).
    const int oh_start = floordiv(h0 + ph - (KH - 1) * dh, sh);
    const int ow_start = floordiv(w0 + pw - (KW - 1) * dw, sw);
    const int c0 = blockIdx.y * CT_REG, jmax = min(CT_REG, C - c0);
    const T* gys = gy + (size_t)s * O * OH * OW;

    T acc[CT_REG];
#pragma unroll
    for (int j = 0; j < CT_REG; ++j) acc[j] = 0;

    for (int o0 = 0; o0 < O; o0 += OC) {
        const int oc_n = min(OC, O - o0);
        if (smem_w) {
            for (int i = tid; i < oc_n * CT_REG * KK; i += nthreads) {
                const int k = i % KK, j = (i / KK) % CT_REG, oo = i / (KK * CT_REG);
                w_s[i] = j < jmax ? w[((o0 + oo) * C + c0 + j) * KK + k] : (T)0;
            }
        }
        if (smem_g) {
            for (int i = tid; i < oc_n * GH_T * GW_T; i += nthreads) {
                const int gw = i % GW_T, gh = (i / GW_T) % GH_T, oo = i / (GW_T * GH_T);
                const int oh = oh_start + gh, ow = ow_start + gw;
                g_s[i] = (oh >= 0 && oh < OH && ow >= 0 && ow < OW) ? gys[((o0 + oo) * OH + oh) * OW + ow] : (T)0;
            }
        }
        __syncthreads();
        if (h < H && ww < W) {
            for (int oo = 0; oo < oc_n; ++oo) {
                for (int kh = 0; kh < KH; ++kh) {
                    const int th = h + ph - kh * dh;
                    if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
                    const int oh = th / sh;
                    for (int kw = 0; kw < KW; ++kw) {
                        const int tw = ww + pw - kw * dw;
                        if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
                        const int ow = tw / sw;
                        const T v = smem_g ? g_s[(oo * GH_T + oh - oh_start) * GW_T + ow - ow_start]
                                           : gys[((o0 + oo) * OH + oh) * OW + ow];
                        const T* wp = smem_w ? w_s + oo * CT_REG * KK + kh * KW + kw
                                             : w + ((size_t)(o0 + oo) * C + c0) * KK + kh * KW + kw;
#pragma unroll
                        for (int j = 0; j < CT_REG; ++j)
                            if (j < jmax) acc[j] += v * wp[j * KK];
                    }
                }
            }
        }
        __syncthreads();
    }
    if (h < H && ww < W) {
#pragma unroll
        for (int j = 0; j < CT_REG; ++j)
            if (j < jmax) gx[(((size_t)s * C + c0 + j) * H + h) * W + ww] = acc[j];
    }
}

// partial[z,o,c,kh,kw] = sum over the output rows (s, oh) of split z of
// sum_ow gy[s,o,oh,ow] * x[s,c,oh*sh-ph+kh*dh, ow*sw-pw+kw*dw]; the wrapper sums over z
// (a fixed split, so the result is deterministic). Each thread owns one weight element
// e = (o, kh, kw) of input channel c = blockIdx.y; per (row, chunk of P output columns) the block
// stages gy for its output channels (G_O x P) and the KH input rows it reads (KH x XW) in shared
// memory (smem off: read global). grid = (ceil(O*KK / blockDim.x), C, splits).
extern "C" __global__ void conv2d_direct_backward_weight(
    const T* __restrict__ gy, const T* __restrict__ x, T* __restrict__ partial,
    int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int sh, int sw, int ph, int pw, int dh, int dw, int P, int XW, int G_O, int use_smem)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* g_s = reinterpret_cast<T*>(smem_raw);   // [G_O][P]
    T* x_s = g_s + G_O * P;                     // [KH][XW]
    const int KK = KH * KW;
    const int e0 = blockIdx.x * blockDim.x, e = e0 + threadIdx.x;
    const int c = blockIdx.y;
    const int o_lo = e0 / KK;
    const int n_o = min(O - 1, (e0 + (int)blockDim.x - 1) / KK) - o_lo + 1;
    const bool active = e < O * KK;
    const int o = e / KK, k = e % KK, kh = k / KW, kw = k % KW;
    const int rows = N * OH;
    const int r_begin = (int)((long long)rows * blockIdx.z / gridDim.z);
    const int r_end = (int)((long long)rows * (blockIdx.z + 1) / gridDim.z);

    T acc = 0;
    for (int r = r_begin; r < r_end; ++r) {
        const int s = r / OH, oh = r - s * OH;
        const int ih0 = oh * sh - ph;
        for (int ow0 = 0; ow0 < OW; ow0 += P) {
            const int iw0 = ow0 * sw - pw, jn = min(P, OW - ow0);
            if (use_smem) {
                for (int i = threadIdx.x; i < n_o * P; i += blockDim.x) {
                    const int j = i % P, oo = i / P;
                    g_s[i] = j < jn ? gy[((s * O + o_lo + oo) * OH + oh) * OW + ow0 + j] : (T)0;
                }
                for (int i = threadIdx.x; i < KH * XW; i += blockDim.x) {
                    const int xw = i % XW, r_kh = i / XW;
                    const int hh = ih0 + r_kh * dh, wi = iw0 + xw;
                    x_s[i] = (hh >= 0 && hh < H && wi >= 0 && wi < W) ? x[((s * C + c) * H + hh) * W + wi] : (T)0;
                }
                __syncthreads();
                if (active) {
                    const T* gp = g_s + (o - o_lo) * P;
                    const T* xp = x_s + kh * XW + kw * dw;
                    for (int j = 0; j < jn; ++j) acc += gp[j] * xp[j * sw];
                }
                __syncthreads();
            } else if (active) {
                const int hh = ih0 + kh * dh;
                if (hh < 0 || hh >= H) continue;
                for (int j = 0; j < jn; ++j) {
                    const int wi = iw0 + j * sw + kw * dw;
                    if (wi >= 0 && wi < W)
                        acc += gy[((s * O + o) * OH + oh) * OW + ow0 + j] * x[((s * C + c) * H + hh) * W + wi];
                }
            }
        }
    }
    if (active) partial[(((size_t)blockIdx.z * O + o) * C + c) * KK + k] = acc;
}
"""
)

# --------------------------------------------------------------------------------------------
# Pooling: one thread per output (forward) or per input pixel (avg backward, a gather).
POOL = (
    _COMMON
    + r"""
// The first maximum in row-major window order wins; as in PyTorch a NaN beats every number (the
// last NaN of the window).
// Windows skip padding (= -inf); idx is h*W+w inside the (sample, channel) plane.
extern "C" __global__ void max_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ idx, int total,
    int H, int W, int OH, int OW, int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int ow = i % OW, oh = (i / OW) % OH, plane = i / (OW * OH);
    const T* xp = x + (size_t)plane * H * W;
    T best = T_NEG_INF;
    int best_i = -1;
    for (int kh = 0; kh < KH; ++kh) {
        const int h = oh * sh - ph + kh * dh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int w = ow * sw - pw + kw * dw;
            if (w < 0 || w >= W) continue;
            const T v = xp[h * W + w];
            if (best_i < 0 || v > best || v != v) { best = v; best_i = h * W + w; }
        }
    }
    y[i] = best;
    idx[i] = best_i;
}

// Scatter with atomics: the indices are all the backward gets. Overlapping windows that pick the
// same input add in arbitrary order (exact for up to two of them: float addition commutes).
extern "C" __global__ void max_pool2d_backward(
    const T* __restrict__ gy, const long long* __restrict__ idx, T* __restrict__ gx,
    int total, int HW, int OHW)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    atomicAdd(gx + (size_t)(i / OHW) * HW + idx[i], gy[i]);
}

// Window [start, end) of output position o along one axis, clipped to the input, and its length
// counting padding (PyTorch's divisor: a ceil_mode window may hang past the padding, not counted).
__device__ __forceinline__ void avg_window(int o, int s, int p, int k, int n, int* start, int* end, int* span)
{
    int a = o * s - p, b = min(a + k, n + p);
    *span = b - a;
    *start = max(a, 0);
    *end = min(b, n);
}

extern "C" __global__ void avg_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y, int total, int H, int W, int OH, int OW,
    int KH, int KW, int sh, int sw, int ph, int pw, int count_include_pad)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int ow = i % OW, oh = (i / OW) % OH, plane = i / (OW * OH);
    const T* xp = x + (size_t)plane * H * W;
    int h0, h1, hspan, w0, w1, wspan;
    avg_window(oh, sh, ph, KH, H, &h0, &h1, &hspan);
    avg_window(ow, sw, pw, KW, W, &w0, &w1, &wspan);
    T acc = 0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) acc += xp[h * W + w];
    const int count = count_include_pad ? hspan * wspan : (h1 - h0) * (w1 - w0);
    y[i] = acc / (T)count;
}

// Gather: each input pixel sums gy / count over the windows that contain it (deterministic).
extern "C" __global__ void avg_pool2d_backward(
    const T* __restrict__ gy, T* __restrict__ gx, int total, int H, int W, int OH, int OW,
    int KH, int KW, int sh, int sw, int ph, int pw, int count_include_pad)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int w = i % W, h = (i / W) % H, plane = i / (W * H);
    const T* gp = gy + (size_t)plane * OH * OW;
    // Windows containing h: oh*sh - ph <= h < oh*sh - ph + KH.
    const int oh_lo = max(0, floordiv(h + ph - KH, sh) + 1), oh_hi = min(OH - 1, (h + ph) / sh);
    const int ow_lo = max(0, floordiv(w + pw - KW, sw) + 1), ow_hi = min(OW - 1, (w + pw) / sw);
    T acc = 0;
    for (int oh = oh_lo; oh <= oh_hi; ++oh) {
        int h0, h1, hspan;
        avg_window(oh, sh, ph, KH, H, &h0, &h1, &hspan);
        for (int ow = ow_lo; ow <= ow_hi; ++ow) {
            int w0, w1, wspan;
            avg_window(ow, sw, pw, KW, W, &w0, &w1, &wspan);
            const int count = count_include_pad ? hspan * wspan : (h1 - h0) * (w1 - w0);
            acc += gp[oh * OW + ow] / (T)count;
        }
    }
    gx[i] = acc;
}
"""
)

# --------------------------------------------------------------------------------------------
# Fused softmax + cross-entropy: one block per row (blockDim a multiple of 32, at most 1024).
LOSS = r"""
// Block-wide reduction (sum when is_max == 0, else max); every thread gets the result.
__device__ T block_reduce(T v, T* red, int is_max)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    for (int off = 16; off > 0; off >>= 1) {
        const T u = __shfl_down_sync(0xffffffffu, v, off);
        v = is_max ? (u > v ? u : v) : v + u;
    }
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nwarps ? red[lane] : (is_max ? T_NEG_INF : (T)0);
        for (int off = 16; off > 0; off >>= 1) {
            const T u = __shfl_down_sync(0xffffffffu, v, off);
            v = is_max ? (u > v ? u : v) : v + u;
        }
        if (lane == 0) red[0] = v;
    }
    __syncthreads();
    v = red[0];
    __syncthreads();  // red is reused by the next reduction
    return v;
}

// loss[r] = logsumexp(z[r]) - z[r, target[r]], probs[r] = softmax(z[r]), with the row max
// subtracted before exp so that no logit overflows.
extern "C" __global__ void softmax_cross_entropy_forward(
    const T* __restrict__ logits, const long long* __restrict__ target, T* __restrict__ loss,
    T* __restrict__ probs, int K)
{
    __shared__ T red[32];
    const T* z = logits + (size_t)blockIdx.x * K;
    T* p = probs + (size_t)blockIdx.x * K;
    T m = T_NEG_INF;
    for (int k = threadIdx.x; k < K; k += blockDim.x) m = z[k] > m ? z[k] : m;
    m = block_reduce(m, red, 1);
    T sum = 0;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        const T e = exp(z[k] - m);
        p[k] = e;
        sum += e;
    }
    sum = block_reduce(sum, red, 0);
    const T inv = (T)1 / sum;
    for (int k = threadIdx.x; k < K; k += blockDim.x) p[k] *= inv;  // same thread wrote p[k]
    if (threadIdx.x == 0) loss[blockIdx.x] = log(sum) + m - z[target[blockIdx.x]];
}

// glogits[r,k] = gloss[r] * (probs[r,k] - [k == target[r]]).
extern "C" __global__ void softmax_cross_entropy_backward(
    const T* __restrict__ gloss, const T* __restrict__ probs, const long long* __restrict__ target,
    T* __restrict__ glogits, int total, int K)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int r = i / K, k = i - r * K;
    glogits[i] = gloss[r] * (probs[i] - (k == target[r] ? (T)1 : (T)0));
}
"""

RAW_SOURCES = {"IM2COL": IM2COL, "CONV_DIRECT": CONV_DIRECT, "POOL": POOL, "LOSS": LOSS}

# --------------------------------------------------------------------------------------------
# Activations, as cupy.ElementwiseKernel specs: name -> (in_params, out_params, operation).
# Backward gets the forward's output y.
ELEMENTWISE = {
    # Two branches so that exp never overflows.
    "sigmoid_forward": ("T x", "T y", "y = x >= (T)0 ? (T)1 / ((T)1 + exp(-x)) : exp(x) / ((T)1 + exp(x))"),
    "sigmoid_backward": ("T gy, T y", "T gx", "gx = gy * y * ((T)1 - y)"),
    "relu_forward": ("T x", "T y", "y = x < (T)0 ? (T)0 : x"),  # NaN stays NaN
    "relu_backward": ("T gy, T y", "T gx", "gx = y <= (T)0 ? (T)0 : gy"),  # NaN passes gy on
    "tanh_forward": ("T x", "T y", "y = tanh(x)"),
    "tanh_backward": ("T gy, T y", "T gx", "gx = gy * ((T)1 - y * y)"),
}


def elementwise_as_kernel(name: str) -> str:
    """An ``ELEMENTWISE`` spec as a standalone ``__global__`` function (for compile checks)."""
    in_params, out_params, operation = ELEMENTWISE[name]
    ins = [p.split()[1] for p in in_params.split(",")]
    outs = [p.split()[1] for p in out_params.split(",")]
    args = ", ".join([f"const T* {v}_p" for v in ins] + [f"T* {v}_p" for v in outs] + ["int n"])
    loads = " ".join(f"const T {v} = {v}_p[i];" for v in ins)
    decls = " ".join(f"T {v};" for v in outs)
    stores = " ".join(f"{v}_p[i] = {v};" for v in outs)
    return (
        f'extern "C" __global__ void {name}({args})\n{{\n'
        f"    const int i = blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= n) return;\n"
        f"    {loads} {decls}\n    {operation};\n    {stores}\n}}\n"
    )
