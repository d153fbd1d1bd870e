"""Train the seed's LeNet-5 on FashionMNIST with the engine: ``python -m engine.train_lenet``.

With no flags: the seed's configuration (sigmoid, average pooling, Xavier-uniform init, SGD
lr 0.9, batch 256) for 10 epochs. Each run gets a directory ``runs/expN/`` with TensorBoard
scalars, ``metrics.csv``, ``config.json``, a checkpoint after every epoch, and at the end
``curves.png``, ``confusion_matrix.png`` and ``kernels.png``. See ``--help``.

On several processes: ``mpiexec -n K python -m engine.train_lenet ...`` trains the one model
data-parallel (:mod:`engine.distributed`): ``--batch-size`` stays the global batch, rank 0 alone
prints and writes the run directory, and the same seed gives the run of one process.

Exit status: 0 done, 1 data/checkpoint/device/disk error or a missing package of the ``cli`` extra,
2 bad arguments, 3 the loss diverged, 130 interrupted (Ctrl-C; a checkpoint to resume from is saved).
Every error is one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

EPOCHS = 10
BATCH_SIZE = 256
DEFAULT_LR = {"sgd": 0.9, "momentum": 0.09, "adam": 0.001}
# plain SGD's rate for the zoo's models: the one d2l trains each with (0.9 is for the seed's sigmoid LeNet)
BOOK_SGD_LR = {"lenet_bn": 0.1, "alexnet": 0.01, "vgg11": 0.01, "nin": 0.05, "googlenet": 0.01,
               "resnet18": 0.01, "densenet": 0.01}
MOMENTUM = 0.9
EVAL_BATCH = 1000  # evaluation only: bigger batches, fewer Python round trips, same results
# On a GPU the loop reads the running loss to the host (to print it and to catch a divergence) every this many
# steps, not every step. It is not the step's only host read: F.cross_entropy checks the targets' range (one read).
LOSS_READ_EVERY_ON_GPU = 50
# Settings a resumed run must keep (they define the model, the data or the batch order).
FIXED_ON_RESUME = ("model", "resize", "batch_size", "optimizer", "activation", "pool", "seed", "limit_train",
                   "limit_test")
# Settings that checkpoints written before they existed lack: their values then.
SAVED_DEFAULTS = {"model": "lenet", "resize": None}


EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130


class ConfigError(RuntimeError):
    """Flags that contradict a checkpoint, or nothing to resume (exit 1)."""


class MissingPackages(RuntimeError):
    """A package of the ``cli`` extra is not installed (exit 1)."""


class UsageError(RuntimeError):
    """A flag or environment variable that cannot work as given (exit 2, before any work)."""


class FlagsError(UsageError):
    """A UsageError that follows from the flags (and the checkpoint) alone: every rank, started with the same
    flags (checked at the start), raises it at the same point, so rank 0 alone reports it."""

    raised_on_all_ranks = True


# ----------------------------------------------------------------------------- arguments
def _int_at_least(minimum: int, wording: str):
    """An argparse ``type`` accepting integers >= ``minimum`` ("a positive integer", "an integer >= 0")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


LENET_DESCRIPTION = ("Train LeNet-5 (the seed's: sigmoid, average pooling, Xavier-uniform init, SGD lr 0.9, "
                     "batch 256) on FashionMNIST with this engine. With no flags: that configuration, 10 epochs.")


def build_parser(prog: str = "python -m engine.train_lenet", description: str = LENET_DESCRIPTION,
                 any_model: bool = False) -> argparse.ArgumentParser:
    """The CLI's flags; ``any_model`` (engine.train) adds ``--model NAME`` (required unless --resume) and
    ``--resize N``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Outputs go to LOGDIR/expN/: TensorBoard events (tensorboard --logdir runs), metrics.csv, "
               "config.json, checkpoint.npz, curves.png, confusion_matrix.png, kernels.png. "
               "Ctrl-C saves a checkpoint; continue with --resume. Exit status: 0 done, 1 data/checkpoint/"
               "device/disk error or a missing package, 2 bad arguments, 3 training diverged, 130 interrupted.",
)
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help=f"total number of epochs (default: {EPOCHS}; the seed used 100); with --resume: train "
                            "until this many (default: the resumed run's)")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help=f"mini-batch size (default: {BATCH_SIZE})")
    train.add_argument("--lr", type=_learning_rate, default=None,
                       help="learning rate (default: sgd 0.9 (the seed's), momentum 0.09 (the same effective step), "
                            "adam 0.001; with plain sgd the zoo's models take the book's rate, e.g. resnet18 0.01)")
    train.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default=None,
                       help=f"sgd (the seed's, default), momentum (SGD with momentum {MOMENTUM}) or adam")
    train.add_argument("--seed", type=_non_negative_int, default=None,
                       help="seeds the weight init and the shuffling: same seed, same run (default: 0)")
    p.set_defaults(prog=prog, model=None, resize=None, model_flag=any_model)
    model = p.add_argument_group("model")
    only = " (--model lenet only)" if any_model else ""
    if any_model:
        model.add_argument("--model", metavar="NAME",
                           help=f"a factory of engine.models (available: {', '.join(available_models())}); "
                                "required unless --resume")
        model.add_argument("--resize", type=_positive_int, default=None, metavar="N",
                           help="resize the 28x28 images to NxN, bilinearly (torch's interpolate, "
                                "align_corners=False), batch by batch: e.g. 96 or 224 for the book's networks")
    model.add_argument("--activation", choices=["sigmoid", "relu"], default=None,
                       help=f"activation (default: sigmoid, the seed's){only}")
    model.add_argument("--pool", choices=["avg", "max"], default=None,
                       help=f"pooling (default: avg, the seed's){only}")
    model.add_argument("--conv-algo", choices=["auto", "im2col", "direct"], default="auto",
                       help="convolution algorithm: im2col (unfold + matrix multiply), direct (no unfolded "
                            "matrix), auto (the faster for each shape; default)")
    machine = p.add_argument_group("machine")
    machine.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                         help="where to train (default: auto: cuda when a usable GPU and CuPy are present, else cpu)")
    machine.add_argument("--num-threads", type=_positive_int, default=None,
                         help="CPU threads for the kernels (default: the engine's, usually all cores)")
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", type=Path, default=None,
                      help="directory with the FashionMNIST *-ubyte[.gz] files; searched before $FASHION_MNIST_DIR, "
                           "./data/FashionMNIST and /usr/share/datasets/fashion-mnist")
    data.add_argument("--download", action="store_true",
                      help="when no directory has the files, download them (verified by SHA-256) into "
                           "--data-dir or ./data/FashionMNIST")
    data.add_argument("--limit-train", type=_positive_int, default=None, metavar="N",
                      help="use only the first N training images (quick trials, tests)")
    data.add_argument("--limit-test", type=_positive_int, default=None, metavar="N",
                      help="use only the first N test images")
    run = p.add_argument_group("run, logs and checkpoints")
    run.add_argument("--logdir", type=Path, default=Path("runs"),
                     help="each run writes into a new LOGDIR/expN/ (default: runs)")
    run.add_argument("--checkpoint", type=Path, default=None,
                     help="checkpoint file, written after every epoch and on Ctrl-C (default: "
                          "LOGDIR/expN/checkpoint.npz; with --resume: that file)")
    run.add_argument("--resume", metavar="CHECKPOINT", default=None,
                     help="continue the run saved in CHECKPOINT ('latest': the newest under LOGDIR) with its "
                          "settings; --epochs, --lr, --device, --conv-algo, --num-threads may change")
    run.add_argument("--eval-only", action="store_true",
                     help="only evaluate the model of --resume CHECKPOINT on the test set")
    run.add_argument("--quiet", action="store_true", help="print only the final summary (and errors)")
    return p


# ----------------------------------------------------------------------------- configuration
def resolve_config(args: argparse.Namespace, saved: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The run's settings: the flags, with a resumed run's fixed settings taken from ``saved``."""
    given = {"model": args.model, "resize": args.resize, "batch_size": args.batch_size, "optimizer": args.optimizer,
             "activation": args.activation, "pool": args.pool, "seed": args.seed, "limit_train": args.limit_train,
             "limit_test": args.limit_test}
    if saved is not None:
        saved = dict(SAVED_DEFAULTS, **saved)
        fixed = [k for k in FIXED_ON_RESUME if not (args.eval_only and k.startswith("limit_"))]
        clashes = [f"--{k.replace('_', '-')} {given[k]} (the checkpoint has {saved[k]})"
                   for k in fixed if given[k] is not None and given[k] != saved[k]]
        if clashes:
            raise ConfigError("a resumed run keeps its settings; drop or fix: " + "; ".join(clashes))
        config = {k: saved[k] for k in FIXED_ON_RESUME}
        config["lr"] = args.lr if args.lr is not None else saved["lr"]
    else:
        model = args.model or "lenet"
        if model != "lenet":
            flags = [f"--{k}" for k in ("activation", "pool") if given[k] is not None]
            if flags:
                verb = "apply" if len(flags) > 1 else "applies"
                raise FlagsError(f"{' and '.join(flags)} {verb} to --model lenet only (got --model {model})")
        config = {"model": model, "resize": args.resize, "batch_size": args.batch_size or BATCH_SIZE,
                  "optimizer": args.optimizer or "sgd",
                  "activation": (args.activation or "sigmoid") if model == "lenet" else None,
                  "pool": (args.pool or "avg") if model == "lenet" else None,
                  "seed": 0 if args.seed is None else args.seed,
                  "limit_train": args.limit_train, "limit_test": args.limit_test}
        config["lr"] = args.lr if args.lr is not None else default_lr(config["optimizer"], model)
    epochs = args.epochs or (saved["epochs"] if saved is not None else EPOCHS)
    config.update(epochs=epochs, conv_algo=args.conv_algo)
    return config


def default_lr(optimizer: str, model: str) -> float:
    """The learning rate when --lr is not given: the book's for a zoo model under plain SGD."""
    if optimizer == "sgd" and model in BOOK_SGD_LR:
        return BOOK_SGD_LR[model]
    return DEFAULT_LR[optimizer]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# What a checkpoint's config must hold: key -> (what it must be, test).
SAVED_CONFIG = {
    "model": ("a name of engine.models", lambda v: isinstance(v, str) and v != ""),
    "resize": ("null or a positive integer", lambda v: v is None or (_positive(v) and isinstance(v, int))),
    "batch_size": ("a positive integer", lambda v: _positive(v) and isinstance(v, int)),
    "optimizer": (" or ".join(sorted(DEFAULT_LR)), lambda v: v in DEFAULT_LR),
    "activation": ("sigmoid or relu (null for a model other than lenet)", lambda v: v in ("sigmoid", "relu", None)),
    "pool": ("avg or max (null for a model other than lenet)", lambda v: v in ("avg", "max", None)),
    "seed": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "limit_train": ("null or a positive integer", lambda v: v is None or (_positive(v) and isinstance(v, int))),
    "limit_test": ("null or a positive integer", lambda v: v is None or (_positive(v) and isinstance(v, int))),
    "lr": ("a positive number", _positive),
    "epochs": ("a positive integer", lambda v: _positive(v) and isinstance(v, int)),
}


def check_saved_config(path: Path, config: Dict[str, Any]) -> None:
    """Raise CheckpointError naming the first setting of a checkpoint's config that is missing or wrong."""
    from engine.training.checkpoint import CheckpointError

    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: damaged checkpoint: its config is {config!r}, expected an object")
    for key, (wanted, ok) in SAVED_CONFIG.items():
        if key not in config:
            if key in SAVED_DEFAULTS:
                continue
            raise CheckpointError(f"{path}: damaged checkpoint: its config lacks {key!r}")
        if not ok(config[key]):
            raise CheckpointError(f"{path}: damaged checkpoint: its config has {key!r} = {config[key]!r}, "
                                  f"expected {wanted}")


def available_models() -> List[str]:
    """The model factories of :mod:`engine.models`, by name."""
    import engine.models

    return sorted(name for name in engine.models.__all__ if callable(getattr(engine.models, name)))


def check_model(config: Dict[str, Any]) -> None:
    """UsageError (one line, the available names) unless ``config['model']`` names an engine.models factory."""
    names = available_models()
    if config["model"] not in names:
        raise FlagsError(f"--model {config['model']}: no such model; available: {', '.join(names)}")


def make_optimizer(name: str, params, lr: float):
    from engine import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=MOMENTUM)
    return optim.Adam(params, lr=lr)


def resolve_device(name: str):
    """'auto': cuda when usable, else cpu. 'cuda' when unusable raises BackendUnavailable saying why."""
    import engine
    from engine import backend

    if name == "auto":
        name = "cuda" if engine.cuda.is_available() else "cpu"
    if name == "cuda":
        backend.cuda_backend()  # raises BackendUnavailable with the reason (no CuPy, no device)
    return engine.device(name)


# ----------------------------------------------------------------------------- checks before any work
def check_environment() -> None:
    """``ENGINE_BACKEND``, when set, names a backend usable here; else UsageError (exit 2)."""
    from engine import backend

    try:
        backend.check_environment()
    except (ValueError, backend.BackendUnavailable) as exc:
        raise UsageError(str(exc)) from None


CLI_PACKAGES = ("rich", "matplotlib")  # tensorboardX, the extra's third, is optional: without it, a warning


def check_cli_packages() -> None:
    """The packages of the ``cli`` extra that the CLI cannot run without are importable (else MissingPackages)."""
    from engine.training.runlog import INSTALL_CLI

    missing = []
    for name in CLI_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingPackages(f"the training CLI needs {' and '.join(missing)} (not installed); "
                              f"install the 'cli' extra: {INSTALL_CLI}")


def check_output_args(args: argparse.Namespace) -> None:
    """--logdir and --checkpoint can be written to as named (UsageError otherwise), before any work."""
    if args.logdir.exists() and not args.logdir.is_dir():
        raise UsageError(f"--logdir {args.logdir}: is a file, expected a directory (or a path to create)")
    if args.checkpoint is not None:
        if args.checkpoint.is_dir():
            raise UsageError(f"--checkpoint {args.checkpoint}: is a directory, expected a file name "
                             f"(e.g. {args.checkpoint / 'checkpoint.npz'})")
        parent = next((p for p in args.checkpoint.resolve().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise UsageError(f"--checkpoint {args.checkpoint}: {parent} is a file, not a directory")


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be made in it (OSError naming it otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(directory)) from None


def set_num_threads(count: Optional[int]) -> None:
    import engine

    if count is not None:
        try:
            engine.set_num_threads(count)
        except ValueError as exc:
            raise UsageError(f"--num-threads {count}: {exc}") from None


# ----------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None, parser: Optional[argparse.ArgumentParser] = None) -> int:
    """The CLI (``parser``: engine.train's, or by default train_lenet's); returns the exit status."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.model_flag and args.model is None and args.resume is None:
        parser.error(f"--model NAME is required (available: {', '.join(available_models())})")
    if args.eval_only and args.resume is None:
        parser.error("--eval-only needs --resume CHECKPOINT (the model to evaluate)")
    try:
        check_environment()
        check_output_args(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_cli_packages()
    except MissingPackages as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        dist = start_ranks()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MissingPackages as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    code, message, exc = run_and_explain(args, dist)
    return end_ranks(dist, code, message, exc)


def run_and_explain(args: argparse.Namespace, dist) -> Tuple[int, Optional[str], Optional[BaseException]]:
    """(exit status, the line(s) for stderr or None, the exception or None) of :func:`run`."""
    from engine.backend import BackendUnavailable
    from engine.data import DatasetError
    from engine.distributed import ConfigMismatch
    from engine.training.checkpoint import CheckpointError
    from engine.training.loop import Diverged, Interrupted

    try:
        dist.check_same_config(rank_config(args))
        return run(args, dist), None, None
    except (UsageError, ConfigMismatch) as exc:
        return EXIT_USAGE, f"error: {exc}", exc
    except (DatasetError, CheckpointError, ConfigError, BackendUnavailable) as exc:
        return EXIT_ERROR, f"error: {exc}", exc
    except OSError as exc:  # the disk: full, read-only, a path that is not a directory
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_ERROR, (f"error: {where}{exc.strerror or exc} (files already written, the last checkpoint "
                            f"included, are intact)"), exc
    except Diverged as exc:
        return EXIT_DIVERGED, f"error: training diverged: {exc}.\n{exc.advice}", exc
    except Interrupted as exc:
        where = f"epoch {exc.epoch}, step {exc.step}"
        if exc.checkpoint is None:
            return EXIT_INTERRUPTED, f"interrupted at {where}; no checkpoint was written", exc
        return EXIT_INTERRUPTED, (f"interrupted at {where}; saved {exc.checkpoint}\ncontinue with: "
                                  f"{resume_command(args.prog, dist)} --resume {exc.checkpoint}"), exc
    except KeyboardInterrupt as exc:
        return EXIT_INTERRUPTED, "interrupted", exc


# ----------------------------------------------------------------------------- several ranks
def start_ranks():
    """This process's DistributedContext (rank 0 of 1 without mpiexec). UsageError for a bad
    ``ENGINE_DIST_TIMEOUT``, MissingPackages when mpiexec started us without mpi4py."""
    from engine.distributed import DistributedContext, MPIUnavailable

    try:
        return DistributedContext()
    except MPIUnavailable as exc:
        raise MissingPackages(str(exc)) from None
    except ValueError as exc:  # ENGINE_DIST_TIMEOUT (the message names it)
        raise UsageError(str(exc)) from None


def rank_config(args: argparse.Namespace) -> Dict[str, Any]:
    """What every rank must have been given alike: all the flags (compared by a hash at the start)."""
    return {name: None if value is None else str(value) for name, value in sorted(vars(args).items())}


def end_ranks(dist, code: int, message: Optional[str], exc: Optional[BaseException]) -> int:
    """Report the outcome once and return the exit status.

    An outcome every rank reached together (success, Ctrl-C, divergence, the same bad input) is
    printed by rank 0 after all ranks got there. A failure of this rank alone is printed by it, and
    the job is aborted: the other ranks, waiting for it in a collective, stop at once.
    """
    on_all_ranks = exc is None or getattr(exc, "raised_on_all_ranks", False)
    if message is not None and (dist.is_main or not on_all_ranks):
        prefix = "" if dist.size == 1 or on_all_ranks else f"rank {dist.rank} of {dist.size}: "
        print(prefix + message, file=sys.stderr, flush=True)
    if dist.size > 1:
        if not on_all_ranks:
            sys.stdout.flush()
            dist.comm.Abort(code)
        dist.barrier()  # no rank leaves (and no launcher ends the job) while rank 0 still writes
    return code


def resume_command(prog: str, dist) -> str:
    return prog if dist.size == 1 else f"mpiexec -n {dist.size} {prog}"


def check_divisible_batch(batch_size: int, train_images: Optional[int], ranks: int) -> None:
    """The global batch splits across the ranks, and so does the epoch's last batch (UsageError otherwise)."""
    if batch_size % ranks:
        lower, upper = batch_size - batch_size % ranks, batch_size + ranks - batch_size % ranks
        raise FlagsError(f"--batch-size {batch_size} (the global batch) is not divisible by the {ranks} ranks; "
                         f"use a multiple of {ranks}, e.g. {max(lower, ranks)} or {upper}")
    last = 0 if train_images is None else train_images % batch_size
    if 0 < last < ranks:
        raise FlagsError(f"--batch-size {batch_size} leaves a last batch of {last} of the {train_images} training "
                         f"images, fewer than the {ranks} ranks; change --batch-size or --limit-train")


def run(args: argparse.Namespace, dist) -> int:
    """One invocation: resume point, settings, machine, model, data, outputs, training, figures.

    ``dist``: this process's DistributedContext; rank 0 alone prints and writes files."""
    from engine.training.loop import Diverged, Trainer
    from engine.training.progress import Reporter
    from engine.training.runlog import RunLog

    resume_path, saved_meta = find_resume(args)
    config = resolve_config(args, saved_meta["config"] if saved_meta else None)
    check_model(config)
    if saved_meta is not None and not args.eval_only and saved_meta["epoch"] >= config["epochs"]:
        if dist.is_main:
            print(f"nothing to do: {resume_path} already has {saved_meta['epoch']} epochs; pass --epochs > "
                  f"{saved_meta['epoch']} to train further")
        return 0
    if args.eval_only and not dist.is_main:  # one pass over the test set: rank 0 does it alone
        return 0
    device = set_up_machine(args, config, dist)
    model, optimizer = build_model(config, device)
    if args.eval_only:
        return evaluate_checkpoint(args, config, resume_path, model, device)
    dist.broadcast_module(model)  # already equal (same seed); rank 0's, whatever the ranks' random state
    data = load_data(args, config, device, dist)
    if saved_meta is not None:
        restore(resume_path, model, optimizer, args.lr)
    run_dir, checkpoint, log, settings = None, None, None, None
    if dist.is_main:
        run_dir, checkpoint = prepare_outputs(args, resume_path)
        log = RunLog(run_dir, start_epoch=saved_meta["epoch"] if saved_meta else 0)
        settings = describe_run(config, device, model, data, run_dir, checkpoint, resume_path, dist.size)
        log.write_config(settings)
    reporter = Reporter(config["epochs"], len(data.train_loader), quiet=args.quiet or not dist.is_main)
    if dist.is_main:
        announce(reporter, settings, saved_meta)
    trainer = Trainer(model, optimizer, data.train_loader, lambda: data.train_eval.batches(0),
                      lambda: data.test_eval.batches(0), num_classes=len(data.train_set.classes),
                      reporter=reporter, checkpoint_path=checkpoint,
                      meta={"config": config, "run_dir": str(run_dir.resolve()) if run_dir else None},
                      loss_read_every=1 if device.type == "cpu" else LOSS_READ_EVERY_ON_GPU,
                      on_epoch_end=(lambda row: log.log_epoch(row, trainer.history)) if log else None,
                      dist=dist)
    if saved_meta is not None:
        trainer.restore(saved_meta)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is reported below
            trainer.run(config["epochs"])
    except Diverged as exc:
        exc.advice = divergence_advice(config["lr"], checkpoint) if dist.is_main else ""
        raise
    finally:
        if log is not None:
            log.close()
    if dist.is_main:
        finish(trainer, model, data.test_set, device, run_dir, checkpoint, reporter, settings)
    return 0


def find_resume(args: argparse.Namespace):
    """(checkpoint path, its checked metadata) of --resume, or (None, None)."""
    from engine.training.checkpoint import CheckpointError, read_checkpoint
    from engine.training.loop import Trainer
    from engine.training.runlog import find_latest_checkpoint

    if args.resume is None:
        return None, None
    path = Path(args.resume)
    if args.resume == "latest":
        path = find_latest_checkpoint(args.logdir)
        if path is None:
            raise ConfigError(f"--resume latest: no checkpoint under {args.logdir}/exp*/")
    meta = read_checkpoint(path, meta_only=True)["meta"]
    try:
        Trainer.check_position(meta)
    except ValueError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: {exc}") from None
    check_saved_config(path, meta.get("config"))
    return path, meta


def set_up_machine(args: argparse.Namespace, config: Dict[str, Any], dist=None):
    """Threads, convolution algorithm and device; returns the device (on several ranks with GPUs,
    each rank takes the GPU of its index on its machine)."""
    import engine

    set_num_threads(args.num_threads)
    engine.set_conv_algo(config["conv_algo"])
    device = resolve_device(args.device)
    if dist is not None and dist.size > 1 and device.type == "cuda":
        device = engine.device("cuda", dist.local_rank % engine.cuda.device_count())
    return device


def build_model(config: Dict[str, Any], device):
    """The model (its initial weights fixed by the seed) on ``device``, and its optimizer."""
    import engine
    import engine.models
    from engine.data import CLASSES
    from engine.models import lenet

    engine.manual_seed(config["seed"])
    if config["model"] == "lenet":
        model = lenet(len(CLASSES), activation=config["activation"], pool=config["pool"],
                      conv_algo=config["conv_algo"])
    else:
        model = getattr(engine.models, config["model"])(num_classes=len(CLASSES))
    if config["model"] != "lenet" or config["resize"] is not None:  # lenet at 28x28: the seed's, known to fit
        check_input_size(model, config)
    model = model.to(device)
    return model, make_optimizer(config["optimizer"], model.parameters(), config["lr"])


def input_side(config: Dict[str, Any]) -> int:
    """The side of the square images the model sees (28, or --resize)."""
    from engine.data.fashion_mnist import IMAGE_HW

    return config["resize"] or IMAGE_HW[0]


def check_input_size(model, config: Dict[str, Any]) -> None:
    """One image through ``model`` (eval mode, no graph): UsageError when the input size does not fit it."""
    import engine

    side = input_side(config)
    model.eval()
    try:
        with engine.no_grad():
            model(engine.zeros((1, 1, side, side)))
    except (ValueError, RuntimeError) as exc:
        hint = "" if config["resize"] else "; try --resize (see the model's docstring for its input size)"
        raise FlagsError(f"--model {config['model']} cannot take 1x{side}x{side} images: {exc}{hint}") from None
    finally:
        model.train()


def evaluate_checkpoint(args: argparse.Namespace, config: Dict[str, Any], path: Path, model, device) -> int:
    """--eval-only: the checkpoint's model on the test set (all of it unless --limit-test)."""
    from engine.data import DataLoader, FashionMNIST
    from engine.data.resize import ResizedLoader
    from engine.training.checkpoint import load_checkpoint
    from engine.training.loop import evaluate

    test_set = FashionMNIST(args.data_dir, train=False, download=args.download, limit=args.limit_test)
    load_checkpoint(path, model)
    loader = DataLoader(test_set, eval_batch_size(config), device=device)
    if config["resize"] is not None:
        loader = ResizedLoader(loader, config["resize"])
    loss, acc, confusion = evaluate(model, loader.batches(0), len(test_set.classes))
    report_eval(path, loss, acc, confusion, test_set.classes)
    return 0


def load_data(args: argparse.Namespace, config: Dict[str, Any], device, dist) -> SimpleNamespace:
    """The two splits and their loaders: shuffled training batches, and bigger ordered ones to evaluate.

    On several ranks the training loader yields this rank's share of each global batch, and each
    rank evaluates its contiguous part of each split (the trainer combines the results)."""
    from engine.data import DataLoader, FashionMNIST
    from engine.data.resize import ResizedLoader

    test_set = FashionMNIST(args.data_dir, train=False, download=args.download, limit=config["limit_test"])
    train_set = FashionMNIST(args.data_dir, train=True, download=args.download, limit=config["limit_train"])
    check_divisible_batch(config["batch_size"], len(train_set), dist.size)
    eval_batch = eval_batch_size(config)

    def part(dataset):
        return dataset if dist.size == 1 else (dist.shard(dataset.data), dist.shard(dataset.targets))

    def sized(loader):
        return loader if config["resize"] is None else ResizedLoader(loader, config["resize"])

    return SimpleNamespace(
        train_set=train_set, test_set=test_set,
        train_loader=sized(dist.data_loader(train_set, config["batch_size"], shuffle=True, seed=config["seed"],
                                            device=device)),
        train_eval=sized(DataLoader(part(train_set), eval_batch, device=device)),
        test_eval=sized(DataLoader(part(test_set), eval_batch, device=device)))


def eval_batch_size(config: Dict[str, Any]) -> int:
    """EVAL_BATCH 28x28 images, or as many resized ones as hold the same pixels (at least the training batch)."""
    from engine.data.fashion_mnist import IMAGE_HW

    if config["resize"] is None:
        return EVAL_BATCH
    return max(config["batch_size"], EVAL_BATCH * IMAGE_HW[0] * IMAGE_HW[1] // config["resize"] ** 2)


def restore(path: Path, model, optimizer, lr: Optional[float]) -> None:
    """Load a resumed run's model, optimizer and RNG; a new --lr replaces the saved one."""
    from engine.training.checkpoint import load_checkpoint

    load_checkpoint(path, model, optimizer)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr


def prepare_outputs(args: argparse.Namespace, resume_path: Optional[Path]) -> Tuple[Path, Path]:
    """The run directory (a resumed run keeps logging into its own) and the checkpoint path, both
    proven writable, with temporaries a killed earlier writer left removed."""
    from engine.data.atomic import remove_stale_temporaries
    from engine.training.runlog import new_run_dir

    run_dir = None
    if resume_path is not None and (resume_path.parent / "config.json").is_file():
        run_dir = resume_path.parent
    run_dir = run_dir or new_run_dir(args.logdir)
    checkpoint = args.checkpoint or resume_path or run_dir / "checkpoint.npz"
    for directory in {run_dir, checkpoint.parent}:
        check_writable(directory)
    for path in (checkpoint, run_dir / "config.json", run_dir / "metrics.csv"):
        remove_stale_temporaries(path)
    return run_dir, checkpoint


def describe_run(config, device, model, data, run_dir: Path, checkpoint: Path, resume_path,
                 ranks: int = 1) -> Dict[str, Any]:
    """What config.json records: the settings, the machine, the data files read and the outputs."""
    import engine
    from engine.training.model import count_parameters

    backend_name = "cupy" if device.type == "cuda" else engine.backend.cpu_backend().NAME
    files = {split: {"images": str(ds.files[0].resolve()), "labels": str(ds.files[1].resolve())}
             for split, ds in (("train", data.train_set), ("test", data.test_set))}
    return dict(config, device=device.type, backend=backend_name, num_threads=engine.get_num_threads(), ranks=ranks,
                data_dir=str(data.train_set.root), data_files=files, train_images=len(data.train_set),
                test_images=len(data.test_set), parameters=count_parameters(model), run_dir=str(run_dir),
                checkpoint=str(checkpoint), resumed_from=str(resume_path) if resume_path else None,
                started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def announce(reporter, settings: Dict[str, Any], saved_meta: Optional[Dict[str, Any]]) -> None:
    s = settings
    if s["model"] == "lenet":
        model = f"LeNet ({s['activation']}, {s['pool']} pool, {s['parameters']:,} parameters)"
    else:
        model = f"{s['model']} ({s['parameters']:,} parameters)"
    resized = "" if s["resize"] is None else f", resized to {s['resize']}x{s['resize']} (bilinear)"
    reporter.info(
        f"{model} on FashionMNIST: "
        f"{s['train_images']} train / {s['test_images']} test images{resized} from {s['data_dir']}\n"
        f"{s['optimizer']} lr {s['lr']:g}, batch {s['batch_size']}, {s['epochs']} epochs, seed {s['seed']}; "
        f"{s['device']} ({s['backend']} backend, {s['num_threads']} threads{ranks_note(s['ranks'])}, "
        f"conv {s['conv_algo']}); "
        f"logs in {s['run_dir']}")
    if saved_meta is not None:
        reporter.info(f"resuming from {s['resumed_from']}: {saved_meta['epoch']} epoch(s) complete; "
                      f"epoch {saved_meta['epoch'] + 1} continues after step {saved_meta['step']}")


def ranks_note(ranks: int) -> str:
    return "" if ranks == 1 else f" per rank, {ranks} ranks"


def finish(trainer, model, test_set, device, run_dir: Path, checkpoint: Path, reporter,
           settings: Dict[str, Any]) -> None:
    """The end of a run: the three figures and the summary."""
    from engine.data import DataLoader
    from engine.data.resize import ResizedLoader
    from engine.training import plots
    from engine.training.loop import evaluate
    from engine.training.model import first_conv_and_activation

    history = trainer.history
    confusion = trainer.last_confusion
    if confusion is None:
        loader = DataLoader(test_set, eval_batch_size(settings), device=device)
        if settings["resize"] is not None:
            loader = ResizedLoader(loader, settings["resize"])
        confusion = evaluate(model, loader.batches(0), len(test_set.classes))[2]
    figures = [plots.plot_curves(history, run_dir / "curves.png"),
               plots.plot_confusion_matrix(confusion, test_set.classes, run_dir / "confusion_matrix.png"),
               kernels_figure(model, test_set, device, run_dir / "kernels.png", first_conv_and_activation,
                              resize=settings["resize"])]
    best = max(history, key=lambda row: row["test_acc"])
    last = history[-1]
    total = sum(row["epoch_seconds"] for row in history)
    reporter.summary(
        f"done: {len(history)} epochs in {total:.1f} s on {device.type} ({settings['backend']}, "
        f"{settings['num_threads']} threads{ranks_note(settings['ranks'])}): train loss {last['train_loss']:.4f}, "
        f"train acc {last['train_acc']:.4f}, "
        f"test acc {last['test_acc']:.4f} (best {best['test_acc']:.4f} at epoch {best['epoch']})\n"
        f"logs: {run_dir}/ (metrics.csv, config.json, TensorBoard events, "
        f"{', '.join(f.name for f in figures)}); checkpoint: {checkpoint}")


def divergence_advice(lr: float, checkpoint: Path) -> str:
    """What to do after a divergence; the checkpoint (if any) predates it: nothing is saved after."""
    if checkpoint.is_file():
        keep = (f"The last good checkpoint, {checkpoint}, is kept; continue from it with a lower rate: "
                f"--resume {checkpoint} --lr {lr / 10:g}")
    else:
        keep = "No epoch completed, so no checkpoint was written."
    return f"Try a lower learning rate, e.g. --lr {lr / 10:g} (this run used {lr:g}). {keep}"


def kernels_figure(model, test_set, device, path: Path, first_layers, count: int = 4,
                   resize: Optional[int] = None) -> Path:
    """The first convolution's kernels beside its feature maps on the first ``count`` test images
    (resized as the model saw them)."""
    import engine
    from engine.data.resize import resize_images
    from engine.training import plots
    from engine.training.checkpoint import to_numpy

    conv, activation = first_layers(model)
    images = test_set.data[:count] if resize is None else resize_images(test_set.data[:count], resize)
    model.eval()
    with engine.no_grad():
        maps = activation(conv(engine.tensor(images, device=device)))
    model.train()
    labels = [test_set.classes[t] for t in test_set.targets[:count]]
    return plots.plot_kernels_and_feature_maps(to_numpy(conv.weight), images, to_numpy(maps), labels, path)


def report_eval(path: Path, loss: float, acc: float, confusion: np.ndarray, classes) -> None:
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    lines = [f"{path}: test loss {loss:.4f}, test acc {acc:.4f} ({int(confusion.sum())} images)"]
    lines += [f"  {name:<12} {a:.4f}" for name, a in zip(classes, per_class)]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
