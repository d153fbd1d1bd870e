"""engine.data: FashionMNIST reading/validation/search order/download, and the DataLoader."""
import gzip
import hashlib
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.data import CLASSES, DataLoader, DatasetError, FashionMNIST, atomic
from engine.data import fashion_mnist as fm

SYSTEM = fm.SYSTEM_DIR
needs_data = pytest.mark.skipif(
    not (SYSTEM / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"FashionMNIST not installed in {SYSTEM} (apt-get install dataset-fashion-mnist)")


@pytest.fixture(autouse=True)
def isolated_search(monkeypatch, tmp_path):
    """Run each test in an empty cwd without $FASHION_MNIST_DIR, so only explicit dirs and
    the system dir are searched."""
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)


def idx_bytes(magic, dims, payload: bytes) -> bytes:
    return np.array([magic, *dims], dtype=">u4").tobytes() + payload


def copy_split(dst: Path, split="test", compress=True, mutate=None):
    """Copy the system files of ``split`` into ``dst`` (raw or gz), optionally mutating the raw bytes."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in fm.SPLITS[split][:2]:
        raw = gzip.decompress((SYSTEM / (name + ".gz")).read_bytes())
        if mutate is not None:
            raw = mutate(name, raw)
        if compress:
            (dst / (name + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (dst / name).write_bytes(raw)
    return dst


# ------------------------------------------------------------------ reading real files
@needs_data
def test_test_split_shapes_dtypes_range_and_classes():
    ds = FashionMNIST(train=False)
    assert ds.data.shape == (10000, 1, 28, 28) and ds.data.dtype == np.float32
    assert ds.targets.shape == (10000,) and ds.targets.dtype == np.int64
    assert ds.data.min() == 0.0 and ds.data.max() == 1.0
    assert ds.classes == CLASSES and len(CLASSES) == 10
    assert np.bincount(ds.targets).tolist() == [1000] * 10  # balanced test set
    # Known first sample of the official test set: an ankle boot.
    assert CLASSES[ds.targets[0]] == "Ankle boot"
    assert ds.root == SYSTEM


@needs_data
def test_train_split_is_balanced_60000():
    ds = FashionMNIST(train=True)
    assert len(ds) == 60000
    assert np.bincount(ds.targets).tolist() == [6000] * 10


@needs_data
def test_limit_reads_the_first_samples():
    full = FashionMNIST(train=False)
    part = FashionMNIST(train=False, limit=100)
    assert len(part) == 100
    np.testing.assert_array_equal(part.data, full.data[:100])
    np.testing.assert_array_equal(part.targets, full.targets[:100])
    with pytest.raises(ValueError, match="limit"):
        FashionMNIST(train=False, limit=0)


@needs_data
def test_raw_uncompressed_files_are_read(tmp_path):
    root = copy_split(tmp_path / "raw", compress=False)
    ds = FashionMNIST(root, train=False, limit=50)
    assert ds.root == root
    np.testing.assert_array_equal(ds.targets, FashionMNIST(train=False, limit=50).targets)


# ------------------------------------------------------------------ search order
@needs_data
def test_search_order_root_then_env_then_local_then_system(tmp_path, monkeypatch):
    root = copy_split(tmp_path / "root")
    env = copy_split(tmp_path / "env")
    local = copy_split(tmp_path / "data" / "FashionMNIST")  # cwd is tmp_path
    monkeypatch.setenv(fm.ENV_VAR, str(env))
    assert FashionMNIST(root, train=False, limit=1).root == root
    assert FashionMNIST(train=False, limit=1).root == env
    monkeypatch.delenv(fm.ENV_VAR)
    assert FashionMNIST(train=False, limit=1).root.resolve() == local.resolve()
    for f in local.iterdir():
        f.unlink()
    assert FashionMNIST(train=False, limit=1).root == SYSTEM


def test_missing_files_error_names_files_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetError) as info:
        FashionMNIST(tmp_path / "empty", train=True)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg and "not found" in msg
    assert str(tmp_path / "empty") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg and "download" in msg


# ------------------------------------------------------------------ corrupt files
@needs_data
def test_truncated_gzip_is_reported(tmp_path):
    root = copy_split(tmp_path / "t")
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz.*truncated or corrupt"):
        FashionMNIST(root, train=False)


@needs_data
def test_truncated_raw_file_is_reported(tmp_path):
    root = copy_split(tmp_path / "t", compress=False,
                      mutate=lambda name, raw: raw[:-28] if "images" in name else raw)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.*truncated"):
        FashionMNIST(root, train=False)


@pytest.mark.parametrize("name, raw, message", [
    ("t10k-labels-idx1-ubyte", idx_bytes(2051, [10000], bytes(10000)), "bad magic number 2051"),
    ("t10k-labels-idx1-ubyte", idx_bytes(2049, [9999], bytes(9999)), r"header says shape \(9999,\)"),
    ("t10k-labels-idx1-ubyte", idx_bytes(2049, [10000], bytes(10001)), "extra bytes"),
    ("t10k-labels-idx1-ubyte", b"\x00\x00", "shorter than its header"),
    ("t10k-labels-idx1-ubyte", idx_bytes(2049, [10000], bytes([10]) * 10000), "label 10 out of range"),
    ("t10k-images-idx3-ubyte", idx_bytes(2051, [10000, 28, 27], bytes(10000 * 28 * 27)), "header says shape"),
])
def test_malformed_idx_is_reported(tmp_path, monkeypatch, name, raw, message):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    root = tmp_path / "bad"
    root.mkdir()
    good = {"t10k-images-idx3-ubyte": idx_bytes(2051, [10000, 28, 28], bytes(10000 * 784)),
            "t10k-labels-idx1-ubyte": idx_bytes(2049, [10000], bytes(10000))}
    good[name] = raw
    for fname, data in good.items():
        (root / fname).write_bytes(data)
    with pytest.raises(DatasetError, match=message) as info:
        FashionMNIST(root, train=False)
    assert name in str(info.value) and "--data-dir" in str(info.value)


def test_wellformed_synthetic_files_load(tmp_path, monkeypatch):
    """The validator accepts a correct file (so the failures above are not vacuous)."""
    root = tmp_path / "ok"
    root.mkdir()
    pixels = (np.arange(10000 * 784) % 256).astype(np.uint8)
    labels = (np.arange(10000) % 10).astype(np.uint8)
    (root / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(2051, [10000, 28, 28], pixels.tobytes()))
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(2049, [10000], labels.tobytes()))
    ds = FashionMNIST(root, train=False)
    np.testing.assert_array_equal(ds.data[0, 0, 0, :3], np.float32([0, 1, 2]) / np.float32(255))
    assert ds.targets[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


# ------------------------------------------------------------------ download (no network)
def test_pinned_checksums_are_of_decompressed_system_files():
    if not (SYSTEM / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"FashionMNIST not installed in {SYSTEM}")
    raw = gzip.decompress((SYSTEM / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == fm.SHA256["t10k-labels-idx1-ubyte"]


def local_fetch(calls, mutate=None):
    """A fetch(url) serving the system files' bytes, recording the URLs asked for."""
    def fetch(url):
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        data = (SYSTEM / name).read_bytes()
        return mutate(name, data) if mutate else data
    return fetch


@needs_data
def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fm, "fetch_url", local_fetch(calls))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    root = tmp_path / "dl"
    ds = FashionMNIST(root, train=False, download=True, limit=10)
    assert sorted(calls) == sorted(fm.MIRRORS[0] + n + ".gz" for n in fm.SPLITS["test"][:2])
    assert calls[0].startswith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
    assert sorted(p.name for p in root.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert ds.root == root and len(ds) == 10
    FashionMNIST(root, train=False, download=True, limit=10)  # present now: no second fetch
    assert len(calls) == 2


@needs_data
@pytest.mark.parametrize("corruption", ["flipped byte", "truncated", "not gzip"])
def test_corrupted_download_is_rejected_and_leaves_no_file(tmp_path, monkeypatch, corruption):
    def mutate(name, data):
        if "labels" not in name:
            return data
        if corruption == "flipped byte":  # valid gzip of wrong contents: only the checksum catches it
            raw = bytearray(gzip.decompress(data))
            raw[100] ^= 1
            return gzip.compress(bytes(raw))
        if corruption == "truncated":
            return data[: len(data) // 2]
        return b"<html>404</html>"

    calls = []
    monkeypatch.setattr(fm, "fetch_url", local_fetch(calls, mutate))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    root = tmp_path / "dl"
    with pytest.raises(DatasetError) as info:
        FashionMNIST(root, train=False, download=True)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg
    assert ("checksum mismatch" if corruption == "flipped byte" else "not valid gzip") in msg
    # The good images file may be kept (it verified); the bad labels file and temp files are not.
    assert [p.name for p in root.iterdir()] == ["t10k-images-idx3-ubyte.gz"]


def test_network_failure_is_one_clear_error(tmp_path, monkeypatch):
    def fetch(url):
        raise OSError("Name or service not known")

    monkeypatch.setattr(fm, "fetch_url", fetch)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="could not download .*Name or service not known"):
        FashionMNIST(tmp_path / "dl", train=False, download=True)
    assert list((tmp_path / "dl").iterdir()) == []


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        fm._atomic_write(tmp_path / "file.gz", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ DataLoader
def toy(n=10):
    """Inputs whose first value is the sample's index, so batches reveal the order."""
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    return x, np.arange(n, dtype=np.int64)


def epoch_order(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    batches = list(loader)
    for X, y in batches:  # inputs and targets stay paired
        np.testing.assert_array_equal(X.numpy()[:, 0, 0, 0], y.numpy().astype(np.float32))
    return [y.numpy().tolist() for _, y in batches]


def test_loader_batches_in_order_keeps_last_partial_batch():
    loader = DataLoader(toy(10), batch_size=4)
    assert len(loader) == 3 and loader.num_samples == 10
    assert epoch_order(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    X, y = next(iter(loader))
    assert isinstance(X, engine.Tensor) and X.shape == (4, 1, 2, 2) and X.dtype == np.float32
    assert y.dtype == np.int64 and X.device.type == "cpu"


def test_loader_drop_last():
    loader = DataLoader(toy(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and loader.num_samples == 8
    assert epoch_order(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_loader_shuffle_is_a_seeded_permutation_per_epoch():
    loader = DataLoader(toy(10), batch_size=3, shuffle=True, seed=7)
    first, second = epoch_order(loader), epoch_order(loader)  # iterating advances the epoch
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(sum(first, [])) == list(range(10)) and sorted(sum(second, [])) == list(range(10))
    assert first != second
    assert epoch_order(DataLoader(toy(10), batch_size=3, shuffle=True, seed=7), epoch=1) == second
    assert epoch_order(DataLoader(toy(10), batch_size=3, shuffle=True, seed=8)) != first
    assert epoch_order(loader, epoch=0) == first


def test_loader_resumes_mid_epoch_with_the_same_batches():
    loader = DataLoader(toy(10), batch_size=3, shuffle=True, seed=3)
    full = [y.numpy().tolist() for _, y in loader.batches(epoch=5)]
    rest = [y.numpy().tolist() for _, y in loader.batches(epoch=5, start=2)]
    assert rest == full[2:]


def test_loader_accepts_a_dataset_and_rejects_bad_arguments():
    class Dataset:
        data, targets = toy(6)

    assert epoch_order(DataLoader(Dataset(), batch_size=6)) == [[0, 1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(toy(4), batch_size=0)
    with pytest.raises(ValueError, match="6 inputs but 5 targets"):
        DataLoader((toy(6)[0], np.zeros(5, np.int64)), batch_size=2)


def test_loader_seed_none_still_covers_every_sample():
    loader = DataLoader(toy(10), batch_size=4, shuffle=True)
    assert sorted(sum(epoch_order(loader), [])) == list(range(10))


# ------------------------------------------------------------------ issue 9: explicit directories, bounded inputs
@needs_data
def test_an_explicit_root_is_searched_alone(tmp_path, monkeypatch):
    """With the data in $FASHION_MNIST_DIR and the system directory, an explicit root still fails when it lacks a
    file, naming it (it used to train on the other copy, or mix two sources)."""
    monkeypatch.setenv(fm.ENV_VAR, str(SYSTEM))
    with pytest.raises(DatasetError, match=r"not found in \S+missing \(does not exist\): missing t10k-images"):
        FashionMNIST(tmp_path / "missing", train=False)
    partial = copy_split(tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"partial: missing t10k-labels-idx1-ubyte\[\.gz\] \(an explicit"):
        FashionMNIST(partial, train=False)
    ds = FashionMNIST(train=False, limit=1)
    assert ds.files == (SYSTEM / "t10k-images-idx3-ubyte.gz", SYSTEM / "t10k-labels-idx1-ubyte.gz")


def gzip_bomb(raw_bytes: int) -> bytes:
    """A small gzip member that inflates to ``raw_bytes`` zero bytes (built without holding them)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [deflate.compress(chunk) for _ in range(raw_bytes >> 20)]
    return b"".join(parts) + deflate.flush()


def peak_memory(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_downloaded_gzip_bomb_is_refused_at_the_files_known_size(tmp_path, monkeypatch):
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros in ~250 KiB, for a file of 10,008 bytes
    assert len(bomb) < 1 << 20
    monkeypatch.setattr(fm, "fetch_url", lambda url: bomb)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    errors = []

    def download():
        with pytest.raises(DatasetError) as info:
            fm.download_files(tmp_path / "dl", splits=("test",))
        errors.append(str(info.value))

    peak = peak_memory(download)
    assert "decompresses to more than 7840016 bytes, the file's known size" in errors[0]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB to refuse a bomb"
    assert list((tmp_path / "dl").iterdir()) == []


def test_gunzip_at_most_reads_every_member_and_stops_at_the_limit():
    data = gzip.compress(b"abc") + gzip.compress(b"defg")
    assert fm.gunzip_at_most(data, 7) == b"abcdefg"
    with pytest.raises(ValueError, match="more than 6 bytes"):
        fm.gunzip_at_most(data, 6)
    with pytest.raises(EOFError):
        fm.gunzip_at_most(data[:-9], 100)


def test_a_local_gzip_bomb_is_read_only_up_to_the_files_known_size(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    root = tmp_path / "bomb"
    root.mkdir()
    images = idx_bytes(2051, [10000, 28, 28], bytes(10000 * 784))
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images, compresslevel=1))
    labels = zlib.compressobj(9, zlib.DEFLATED, 31)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(
        labels.compress(idx_bytes(2049, [10000], b"")) + b"".join(labels.compress(bytes(1 << 20)) for _ in range(256))
        + labels.flush())
    errors = []

    def load():
        with pytest.raises(DatasetError) as info:
            FashionMNIST(root, train=False)
        errors.append(str(info.value))

    peak = peak_memory(load)
    assert "t10k-labels-idx1-ubyte.gz: file is truncated or has extra bytes" in errors[0]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB to read a 10 KB file"
