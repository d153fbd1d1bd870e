"""FashionMNIST: find, (optionally) download, validate and read the four IDX files.

Images come back as float32 in [0, 1] shaped ``(N, 1, 28, 28)``, labels as int64 ``(N,)``.
Files may be gzip-compressed (``*.gz``, as distributed) or raw. Every problem (missing file,
bad magic number, wrong count or size, truncated gzip, failed checksum) raises one
:class:`DatasetError` whose message names the file, what is wrong and how to fix it.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from engine.data.atomic import atomic_open

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_HW = (28, 28)
IMAGES_MAGIC = 2051  # IDX: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # IDX: unsigned byte, 1 dimension

# split -> (images file, labels file, number of samples)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
# SHA-256 of each file's DECOMPRESSED contents (so a re-compressed copy still verifies),
# computed from Debian's dataset-fashion-mnist package, which ships the official files.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# The dataset's official mirror (Zalando Research), tried in order.
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

ENV_VAR = "FASHION_MNIST_DIR"
LOCAL_DIR = Path("data") / "FashionMNIST"  # relative to the working directory
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: apt-get install dataset-fashion-mnist

FIXES = (
    "Fixes: install the Debian package (sudo apt-get install dataset-fashion-mnist), "
    "pass --data-dir DIR (or set $FASHION_MNIST_DIR) pointing at the four "
    "*-ubyte[.gz] files, or allow downloading (--download / download=True)."
)


class DatasetError(RuntimeError):
    """The dataset cannot be found, fetched or read; the message says why and how to fix it."""


# ----------------------------------------------------------------------------- locating files
def candidate_dirs(root: Optional[os.PathLike] = None) -> List[Path]:
    """Where the files are looked for: ``root`` alone when given (an explicit directory never falls
    back to another), else in order ``$FASHION_MNIST_DIR``, ``./data/FashionMNIST``,
    ``/usr/share/datasets/fashion-mnist``."""
    if root is not None:
        return [Path(root)]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    return dirs + [LOCAL_DIR, SYSTEM_DIR]


def _find_file(directory: Path, name: str) -> Optional[Path]:
    for candidate in (directory / (name + ".gz"), directory / name):
        if candidate.is_file():
            return candidate
    return None


def find_split(split: str, root: Optional[os.PathLike] = None) -> Optional[Tuple[Path, Path]]:
    """The (images, labels) paths of ``split`` in the first directory holding both, or None."""
    images_name, labels_name, _ = SPLITS[split]
    for directory in candidate_dirs(root):
        images, labels = _find_file(directory, images_name), _find_file(directory, labels_name)
        if images is not None and labels is not None:
            return images, labels
    return None


def split_sizes(split: str) -> Tuple[int, int]:
    """The decompressed sizes in bytes of the (images, labels) files of ``split``."""
    count = SPLITS[split][2]
    return 16 + count * IMAGE_HW[0] * IMAGE_HW[1], 8 + count


def _not_found(split: str, root: Optional[os.PathLike]) -> DatasetError:
    images_name, labels_name, _ = SPLITS[split]
    if root is not None:
        missing = [n + "[.gz]" for n in (images_name, labels_name) if _find_file(Path(root), n) is None]
        where = f"{root} (does not exist)" if not Path(root).is_dir() else str(root)
        return DatasetError(f"FashionMNIST {split} files not found in {where}: missing {', '.join(missing)} "
                            f"(an explicit directory is used alone). {FIXES}")
    searched = ", ".join(str(d) for d in candidate_dirs(root))
    return DatasetError(f"FashionMNIST {split} files ({images_name}[.gz], {labels_name}[.gz]) not found; "
                        f"searched: {searched}. {FIXES}")


# ----------------------------------------------------------------------------- reading IDX files
def _read_bytes(path: Path, nbytes: int) -> bytes:
    """At most the first ``nbytes`` decompressed bytes of ``path``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read(nbytes)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot be read, the file is truncated or corrupt ({exc}). {FIXES}") from exc


def read_idx(path: os.PathLike, magic: int, count: int, item_shape: Tuple[int, ...],
             limit: Optional[int] = None) -> np.ndarray:
    """Read an unsigned-byte IDX file, checking its magic number, count and item shape.

    Returns a uint8 array ``(min(count, limit), *item_shape)``. With ``limit`` only the header and
    the first ``limit`` items are decompressed (fast partial loads for tests and smoke runs).
    """
    path = Path(path)
    ndim = 1 + len(item_shape)
    header_size = 4 * (1 + ndim)
    n = count if limit is None else min(count, limit)
    item_size = int(np.prod(item_shape, dtype=np.int64))
    # Never more than the file's known size (+1 byte to see extra data): a gzip bomb stops there.
    raw = _read_bytes(path, header_size + (count * item_size + 1 if limit is None else n * item_size))
    if len(raw) < header_size:
        raise DatasetError(f"{path}: file is truncated ({len(raw)} bytes, shorter than its header). {FIXES}")
    header = np.frombuffer(raw, dtype=">u4", count=1 + ndim)
    if header[0] != magic:
        raise DatasetError(
            f"{path}: bad magic number {int(header[0])} (expected {magic}); this is not the "
            f"FashionMNIST file it is named after. {FIXES}")
    dims = tuple(int(d) for d in header[1:])
    if dims != (count, *item_shape):
        raise DatasetError(f"{path}: header says shape {dims}, expected {(count, *item_shape)}. {FIXES}")
    expected = header_size + n * item_size
    if len(raw) < expected or (limit is None and len(raw) != expected):
        raise DatasetError(
            f"{path}: file is truncated or has extra bytes ({len(raw)} bytes of data, expected "
            f"{header_size + count * item_size}). {FIXES}")
    return np.frombuffer(raw, dtype=np.uint8, count=n * item_size, offset=header_size).reshape(n, *item_shape)


def load_split(split: str, root: Optional[os.PathLike] = None,
               limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, Tuple[Path, Path]]:
    """Read ``split`` ('train' or 'test'): images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,),
    and the (images, labels) files they came from."""
    found = find_split(split, root)
    if found is None:
        raise _not_found(split, root)
    images_path, labels_path = found
    _, _, count = SPLITS[split]
    images = read_idx(images_path, IMAGES_MAGIC, count, IMAGE_HW, limit)
    labels = read_idx(labels_path, LABELS_MAGIC, count, (), limit)
    if labels.size and labels.max() >= len(CLASSES):
        raise DatasetError(f"{labels_path}: label {int(labels.max())} out of range 0..{len(CLASSES) - 1}. {FIXES}")
    # One vectorised conversion: uint8 -> float32 in [0, 1] (what ToTensor() does).
    images = (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, *IMAGE_HW)
    return images, labels.astype(np.int64), (images_path, labels_path)


# ----------------------------------------------------------------------------- download
DOWNLOAD_MAX_BYTES = 64 << 20  # the largest file, train images, is 26 MiB compressed


def fetch_url(url: str, timeout: float = 60.0, max_bytes: int = DOWNLOAD_MAX_BYTES) -> bytes:
    """Download ``url`` and return its bytes (the one function that touches the network); at most ``max_bytes``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https/http mirror)
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"the response is larger than {max_bytes} bytes")
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def gunzip_at_most(payload: bytes, limit: int) -> bytes:
    """The decompressed gzip ``payload`` (all its members); ValueError once it passes ``limit`` bytes,
    before more is inflated (a small 'gzip bomb' never costs more than ``limit``)."""
    out, rest = bytearray(), payload
    while rest:
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip framing
        out += inflater.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise ValueError(f"it decompresses to more than {limit} bytes, the file's known size")
        if not inflater.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        rest = inflater.unused_data
    return bytes(out)


def _verify(name: str, url: str, payload: bytes) -> None:
    """Check the decompressed ``payload`` of file ``name`` against its pinned SHA-256."""
    split = next(s for s, files in SPLITS.items() if name in files)
    size = dict(zip(SPLITS[split][:2], split_sizes(split)))[name]
    try:
        contents = gunzip_at_most(payload, size)
    except (ValueError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{url}: downloaded file is not valid gzip ({exc}); nothing was written. {FIXES}") from exc
    digest = hashlib.sha256(contents).hexdigest()
    if digest != SHA256[name]:
        raise DatasetError(
            f"{url}: checksum mismatch (SHA-256 of contents {digest}, expected {SHA256[name]}); "
            f"nothing was written. {FIXES}")


def download_files(root: os.PathLike = LOCAL_DIR, splits: Sequence[str] = ("train", "test"),
             mirrors: Sequence[str] = MIRRORS, fetch: Optional[Callable[[str], bytes]] = None) -> Path:
    """Fetch the files of ``splits`` missing from ``root``, verify them, and write them atomically.

    ``fetch(url) -> bytes`` defaults to :func:`fetch_url` (tests pass a local one). Each file is
    verified against its pinned SHA-256 before it is written, so a failed or corrupted download
    leaves no file behind. Returns ``root``.
    """
    fetch = fetch or fetch_url
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for name in SPLITS[split][:2]:
            if _find_file(root, name) is not None:
                continue
            errors: Dict[str, str] = {}
            for mirror in mirrors:
                url = mirror + name + ".gz"
                try:
                    payload = fetch(url)
                    _verify(name, url, payload)
                except DatasetError as exc:
                    errors[url] = str(exc)
                    continue
                except Exception as exc:  # network errors of any kind: try the next mirror
                    errors[url] = f"{type(exc).__name__}: {exc}"
                    continue
                _atomic_write(root / (name + ".gz"), payload)
                break
            else:
                details = "; ".join(f"{url}: {msg}" for url, msg in errors.items())
                raise DatasetError(f"could not download {name}.gz into {root} ({details}). {FIXES}")
    return root


# ----------------------------------------------------------------------------- dataset
class FashionMNIST:
    """The FashionMNIST train (60,000) or test (10,000) split, held in memory as numpy arrays.

    Args:
        root: directory with the IDX files, used alone; when None, the first of ``$FASHION_MNIST_DIR``,
            ``./data/FashionMNIST`` and ``/usr/share/datasets/fashion-mnist`` that holds them.
        train: the training split when True, else the test split.
        download: when no directory holds the files, download them into ``root``
            (or ``./data/FashionMNIST``) from the official mirror.
        limit: keep only the first ``limit`` samples (reads only those bytes).

    Attributes:
        data: float32 ``(N, 1, 28, 28)`` in [0, 1]. targets: int64 ``(N,)``. classes: the ten names.
        files: the (images, labels) paths read. root: their directory.

    Example::

        >>> test = FashionMNIST(train=False)
        >>> test.data.shape, test.classes[test.targets[0]]
        ((10000, 1, 28, 28), 'Ankle boot')
    """

    classes = CLASSES

    def __init__(self, root: Optional[os.PathLike] = None, train: bool = True, download: bool = False,
                 limit: Optional[int] = None):
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.train = train
        split = "train" if train else "test"
        if download and find_split(split, root) is None:
            download_files(LOCAL_DIR if root is None else root, splits=(split,))
        self.data, self.targets, self.files = load_split(split, root, limit)
        self.root = self.files[0].parent

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        return self.data[index], self.targets[index]

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"FashionMNIST(split={split!r}, samples={len(self)}, root={str(self.root)!r})"
