"""A stand-in for CuPy that runs the cupy backend on the CPU, for tests on machines without a GPU.

Only where asked for: put this folder's parent (``tests/cuda_emulator/pythonpath``, which holds nothing else) on
PYTHONPATH, before site-packages, and ``import cupy`` gets this module (tests/test_cuda_emulator.py does so in its
subprocesses; nothing else puts it on ``sys.path``, so wherever real CuPy is installed, it is the one imported):
arrays are ``cupy.ndarray``, a numpy.ndarray subclass whose type lives in module ``cupy`` (so code that
tells device arrays by their module sees them on the GPU; mixing them with host arrays raises TypeError,
as CuPy does), array functions are numpy's, and ``RawModule`` / ``ElementwiseKernel``
compile the CUDA C with g++ against ``emu.h`` and run it on the CPU. Each launch is checked the way
the GPU would refuse it: argument count and types against the kernel's signature (arrays for
pointers, of the right dtype; numpy.int32 for ints), block and grid limits, at most 48 KiB of
dynamic shared memory. It checks kernel logic and launch code, not speed or GPU memory behaviour.

Beyond what emu.h emulates (blocks and threads in a shuffled order, shared memory filled with NaN), each
launch fails when two CUDA threads store to one element of an output without atomicAdd, or an index
leaves its array.

Environment: ``CUDA_EMULATOR_BUILD`` (folder for the compiled .so files, named by a hash of their
source and of emu.h; default ``~/.cache/cuda_emulator``), ``CUDA_EMULATOR_SEED`` (the shuffle's seed, default 0),
``CUDA_EMULATOR_CFLAGS`` (default ``-O1``; e.g. add ``-fsanitize=address``),
``CUDA_EMULATOR_SMS`` (the multiprocessor count it reports, default 4).
"""

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import subprocess
import threading
import types

import numpy

_HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/cuda_emulator: emu.h
_CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
_BUILD = os.environ.get("CUDA_EMULATOR_BUILD") or os.path.join(_CACHE, "cuda_emulator")
os.makedirs(_BUILD, exist_ok=True)
_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\((.*?)\)\s*\{', re.S)
_DYNAMIC_SMEM = "extern __shared__ __align__(16) unsigned char smem_raw[];"
_CTYPES = {"float": numpy.dtype(numpy.float32), "double": numpy.dtype(numpy.float64)}


class ndarray(numpy.ndarray):
    """A "device" array: a numpy array whose type lives in module ``cupy``, so the engine sees it on cuda.

    Results of numpy operations on it stay this type (as CuPy's stay ``cupy.ndarray``), reductions and
    scalar indexing give 0-d arrays rather than numpy scalars (as CuPy does), and mixing it with a
    host array (a numpy array of one or more dimensions) raises TypeError, as CuPy does.
    ``get()`` copies it to a plain numpy array.
    """

    def __array_finalize__(self, obj):
        pass

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return arr.view(ndarray) if isinstance(arr, numpy.ndarray) else _on_device(arr)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        checked = inputs[:1] + inputs[2:] if method == "at" else inputs  # (indices may be on the host)
        out = kwargs.get("out")
        with _outermost():
            _refuse_host(f"{ufunc.__name__}.{method}", checked, kwargs)
            if out is not None:
                kwargs["out"] = tuple(_host_view(o) for o in out)
            result = getattr(ufunc, method)(*(_host_view(a) for a in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        with _outermost():
            _refuse_host(func.__name__, args, kwargs)
            return _on_device(super().__array_function__(func, types, args, kwargs))

    def __getitem__(self, index):
        return _on_device(super().__getitem__(index))

    def __setitem__(self, index, value):
        _refuse_host("__setitem__", (value,))  # CuPy does not copy host arrays in: use cupy.asarray first
        super().__setitem__(index, value)

    @property
    def device(self):
        return _Device(0)

    def get(self):
        """A host copy (a plain numpy array)."""
        return numpy.array(self, copy=True, subok=False)


def _host_view(a):
    return a.view(numpy.ndarray) if isinstance(a, ndarray) else a


def _on_device(value):
    """numpy results as device values: arrays (and numpy scalars, as 0-d arrays) become ``ndarray``."""
    if isinstance(value, ndarray):
        return value
    if isinstance(value, numpy.ndarray):
        return value.view(ndarray)
    if isinstance(value, numpy.generic):
        return numpy.asarray(value).view(ndarray)
    if isinstance(value, tuple):
        return tuple(_on_device(v) for v in value)
    if isinstance(value, list):
        return [_on_device(v) for v in value]
    return value


_nesting = threading.local()  # numpy's own implementations call array functions with host temporaries


@contextlib.contextmanager
def _outermost():
    """Counts nested array calls on this thread: only the outermost one is the caller's code."""
    depth = getattr(_nesting, "depth", 0)
    _nesting.depth = depth + 1
    try:
        yield
    finally:
        _nesting.depth = depth


def _refuse_host(what, args, kwargs=None):
    """TypeError, like CuPy's, when a host array (not 0-d) is passed where device arrays are expected."""
    if getattr(_nesting, "depth", 0) > 1:  # inside numpy's implementation of an outer call
        return
    values = list(args) + list((kwargs or {}).values())
    while values:
        v = values.pop()
        if isinstance(v, (tuple, list)):
            values.extend(v)
        elif isinstance(v, numpy.ndarray) and not isinstance(v, ndarray) and v.ndim > 0:
            raise TypeError(f"{what}: Unsupported type {type(v)} (a host array mixed with device arrays)")


def _device_function(func):
    @functools.wraps(func)
    def call(*args, **kwargs):
        with _outermost():
            _refuse_host(getattr(func, "__name__", "cupy function"), args, kwargs)
            return _on_device(func(*args, **kwargs))

    return call


def __getattr__(name):  # cupy.empty, cupy.matmul, cupy.int64, ...: numpy's, giving device arrays
    value = getattr(numpy, name)
    if callable(value) and not isinstance(value, (type, numpy.ufunc)):
        return _device_function(value)
    return value  # dtypes and ufuncs (ufuncs keep device arrays through __array_ufunc__)


def asarray(a, dtype=None):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return numpy.array(a, dtype=dtype, copy=True, order="C").view(ndarray)


def asnumpy(a):
    return numpy.array(a, copy=True, subok=False) if isinstance(a, ndarray) else numpy.asarray(a)


def _parameters(text):
    """[(type, name)] of a kernel's parameter list."""
    params = []
    for param in text.split(","):
        param = " ".join(param.split())
        name = param.split()[-1]
        params.append((param[: -len(name)].strip(), name))
    return params


def _uses_block_sync(body: str) -> bool:
    return "__syncthreads" in body or "__shfl" in body or "block_reduce" in body


def _is_output(ctype: str) -> bool:
    return "*" in ctype and "const" not in ctype


def _base_type(ctype: str) -> str:
    return ctype.replace("const", "").replace("__restrict__", "").replace("*", "").strip()


def _watched_signature(match) -> str:
    """A kernel's signature with its output pointers as ``emu_out<V>`` (emu.h watches their stores)."""
    params = [f"emu_out<{_base_type(t)}> {n}" if _is_output(t) else f"{t} {n}" for t, n in _parameters(match.group(2))]
    return f'extern "C" __global__ void {match.group(1)}({", ".join(params)}) {{'


def _compile(code: str):
    """(shared library, {kernel: (params, needs threads)}) for one CUDA source."""
    kernels = {}
    for match in _SIGNATURE.finditer(code):
        end = code.find('extern "C"', match.end())
        body = code[match.end() : end if end >= 0 else len(code)]
        kernels[match.group(1)] = (_parameters(match.group(2)), _uses_block_sync(body))
    launchers = []
    for name, (params, _) in kernels.items():
        args = []
        for i, (t, pname) in enumerate(params):
            if _is_output(t):
                base = _base_type(t)
                args.append(f"emu_out<{base}>{{reinterpret_cast<{base}*>(a[{i}]), "
                            f'reinterpret_cast<long long*>(o[{i}]), n[{i}], "{pname}", 0}}')
            else:
                args.append(f"reinterpret_cast<{t}>(a[{i}])" if "*" in t else f"({t})a[{i}]")
        launchers.append(
            f'extern "C" int emu_launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, '
            f"unsigned bz, size_t smem, int threaded, const int64_t* a, const int64_t* o, const int64_t* n) {{ "
            f"return emu_run(gx, gy, gz, bx, by, bz, smem, threaded, [&] {{ {name}({', '.join(args)}); }}); }}"
        )
    code = _SIGNATURE.sub(_watched_signature, code)
    code = code.replace(_DYNAMIC_SMEM, "unsigned char* smem_raw = emu_smem;")
    source = '#include "emu.h"\n' + code + "\n" + "\n".join(launchers) + "\n"
    flags = os.environ.get("CUDA_EMULATOR_CFLAGS", "-O1").split()
    with open(os.path.join(_HERE, "emu.h")) as f:
        header = f.read()  # part of the key: a changed emu.h rebuilds every kernel
    key = hashlib.sha1((header + source + " ".join(flags)).encode()).hexdigest()[:16]
    library = os.path.join(_BUILD, f"kernels_{key}.so")
    if not os.path.exists(library):
        cpp = os.path.join(_BUILD, f"kernels_{key}.{os.getpid()}.cpp")
        with open(cpp, "w") as f:
            f.write(source)
        partial = f"{library}.{os.getpid()}"  # renamed into place: concurrent runs never see half a file
        command = ["g++", "-std=c++20", "-shared", "-fPIC", *flags, "-I", _HERE, "-o", partial, cpp, "-lpthread"]
        subprocess.run(command, check=True)
        os.replace(partial, library)
        os.remove(cpp)
    library = ctypes.CDLL(library)
    library.emu_last_error.restype = ctypes.c_char_p
    return library, kernels


class RawKernel:
    def __init__(self, library, name, params, threaded, dtype):
        self.name, self.params, self.threaded, self.dtype = name, params, threaded, dtype
        self._library = library
        self._launch = getattr(library, f"emu_launch_{name}")
        self._launch.restype = ctypes.c_int

    def _argument(self, value, ctype, pname):
        where = f"{self.name}({pname})"
        if "*" not in ctype:
            assert ctype == "int" and isinstance(value, numpy.int32), f"{where}: {type(value)} for {ctype}"
            return int(value)
        assert isinstance(value, ndarray), f"{where}: {type(value)} for a pointer (a device array is needed)"
        assert value.flags.c_contiguous, f"{where}: array not C-contiguous"
        base = ctype.replace("const", "").replace("__restrict__", "").replace("*", "").strip()
        expected = {"T": self.dtype, "long long": numpy.dtype(numpy.int64),
                    "unsigned char": numpy.dtype(numpy.uint8)}[base]
        assert value.dtype == expected, f"{where}: {value.dtype} for {ctype} ({expected})"
        return value.ctypes.data

    def __call__(self, grid, block, args, shared_mem=0):
        assert len(args) == len(self.params), f"{self.name}: {len(args)} arguments for {len(self.params)}"
        values = [self._argument(v, t, n) for v, (t, n) in zip(args, self.params)]
        # per element of each output: the CUDA thread that last stored to it (-1: none yet)
        owners = [numpy.full(v.size, -1, numpy.int64) if _is_output(t) else None
                  for v, (t, _) in zip(args, self.params)]
        grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
        for g in grid + block:
            assert isinstance(g, int) and not isinstance(g, bool), f"{self.name}: grid {grid} block {block}"
        count = len(values)
        rc = self._launch(
            *[ctypes.c_uint(g) for g in grid + block],
            ctypes.c_size_t(shared_mem),
            ctypes.c_int(self.threaded),
            (ctypes.c_int64 * count)(*values),
            (ctypes.c_int64 * count)(*[0 if o is None else o.ctypes.data for o in owners]),
            (ctypes.c_int64 * count)(*[getattr(v, "size", 0) for v in args]),
        )
        if rc == 4:
            raise AssertionError(f"{self.name}: {self._library.emu_last_error().decode()}")
        assert rc == 0, f"{self.name}: launch refused (code {rc}): grid {grid} block {block} smem {shared_mem}"


class RawModule:
    def __init__(self, code, options=()):
        self.dtype = _CTYPES[re.search(r"typedef (\w+) T;", code).group(1)]
        self._library, self._kernels = _compile(code)

    def get_function(self, name):
        params, threaded = self._kernels[name]
        return RawKernel(self._library, name, params, threaded, self.dtype)


class ElementwiseKernel:
    """Inputs and outputs of one dtype T, same shape (all the backend uses)."""

    def __init__(self, in_params, out_params, operation, name):
        self.ins = [p.split()[1] for p in in_params.split(",")]
        self.outs = [p.split()[1] for p in out_params.split(",")]
        self.operation, self.name, self._kernels = operation, name, {}

    def _kernel(self, dtype):
        if dtype not in self._kernels:
            ctype = {v: k for k, v in _CTYPES.items()}[dtype]
            args = ", ".join([f"const T* {v}_p" for v in self.ins] + [f"T* {v}_p" for v in self.outs] + ["int n"])
            loads = " ".join(f"const T {v} = {v}_p[i];" for v in self.ins) + " ".join(f"T {v};" for v in self.outs)
            stores = " ".join(f"{v}_p[i] = {v};" for v in self.outs)
            code = (
                f'typedef {ctype} T;\nextern "C" __global__ void {self.name}({args}) {{\n'
                f"const int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return;\n"
                f"{loads}\n{self.operation};\n{stores}\n}}\n"
            )
            self._kernels[dtype] = RawModule(code).get_function(self.name)
        return self._kernels[dtype]

    def __call__(self, *inputs):
        assert len(inputs) == len(self.ins), f"{self.name}: {len(inputs)} inputs for {len(self.ins)}"
        _refuse_host(self.name, inputs)
        first = inputs[0]
        assert all(a.dtype == first.dtype and a.shape == first.shape for a in inputs), f"{self.name}: mixed inputs"
        outs = [numpy.empty_like(first, order="C").view(ndarray) for _ in self.outs]
        if first.size:
            inputs = tuple(numpy.ascontiguousarray(a).view(ndarray) for a in inputs)
            args = inputs + tuple(outs) + (numpy.int32(first.size),)
            self._kernel(first.dtype)(((first.size + 255) // 256,), (256,), args)
        return outs[0] if len(outs) == 1 else tuple(outs)


_DEVICE_COUNT = 1


class _Device:
    """``cupy.cuda.Device(i)``: one emulated device (id 0); also a context manager, like CuPy's."""

    attributes = {"MultiProcessorCount": int(os.environ.get("CUDA_EMULATOR_SMS", "4"))}

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if not 0 <= self.id < _DEVICE_COUNT:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def synchronize(self):
        pass


cuda = types.SimpleNamespace(Device=_Device, runtime=types.SimpleNamespace(getDeviceCount=lambda: _DEVICE_COUNT))
