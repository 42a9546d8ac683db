"""``fit``: train a registered model on a prepared folder, one metrics row per epoch.

The parts, one job each:

* :mod:`har.train.options` -- :class:`TrainOptions` and where their values come from
  (``configs/train.toml``, ``--config``, explicit options, a resumed checkpoint);
* :mod:`har.train.rundir` -- the run folder's lifecycle (:class:`RunDir`);
* :mod:`har.train.loop` -- the epoch loop (:class:`~har.train.loop.Trainer`);
* :mod:`har.train.records` -- metrics.csv, config.json, summary.json and the printed table.

After every epoch ``fit`` writes ``last.pt``, ``best.pt`` (best val macro F1), ``metrics.csv``;
at the end ``curves.png`` (:func:`har.plots.plot_curves`) and ``summary.json`` (best epoch, its
val scores, and the test split's scores of ``best.pt`` computed by :func:`har.evaluate.evaluate`,
so they equal ``har evaluate``'s). Without a val split the ``val_*`` columns stay empty,
``best.pt`` is the last epoch and early stopping is refused.

This package imports torch only when :func:`fit` runs (the CLI reads the options without it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from har.train.options import RESUMABLE, TrainOptions
from har.train.records import EPOCH_HEADER, METRICS_COLUMNS, TIMING_COLUMNS, format_epoch_row
from har.train.rundir import RunDir
from harkit.errors import HarError

__all__ = ["fit", "prepare_run", "RunSetup", "TrainOptions", "RESUMABLE", "METRICS_COLUMNS",
           "TIMING_COLUMNS", "EPOCH_HEADER", "format_epoch_row", "RunDir", "TrainingInterrupted",
           "train_step"]


def __getattr__(name: str):
    """The torch-backed names, imported on first use."""
    if name in ("TrainingInterrupted", "train_step", "Trainer"):
        from har.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'har.train' has no attribute {name!r}")


def fit(data=None, model: Optional[str] = None, *, out=None, resume=None, config=None,
        hparams: Optional[Dict[str, Any]] = None, log: Optional[Callable[[str], None]] = None,
        on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None, progress: bool = False,
        check_labels: bool = True, **options: Any) -> Dict[str, Any]:
    """Train ``model`` on the prepared folder ``data`` (a path or a ``PreparedData``); return
    the summary (summary.json).

    ``options`` are :class:`TrainOptions` fields and ``hparams`` the model's hyper-parameters.
    Unset options (and ``data``, ``model``) come from the TOML file ``config`` ([train], [model])
    over the packaged defaults (:func:`har.train.options.defaults`); on ``resume`` (a
    last.pt/best.pt path) from the checkpoint, which also supplies ``data``, ``model`` and
    ``hparams`` -- a resumed run may change only :data:`RESUMABLE` options (``epochs`` is the
    new total) and its run folder defaults to the checkpoint's. ``out`` defaults to
    ``runs/<model>-<UTC time>``; an existing non-empty folder is refused. ``log(line)`` receives
    notes, ``on_epoch(row)`` each metrics row. ``check_labels`` refuses val/test classes the
    train split lacks (``har cv`` allows them: a held-out subject may have an activity no
    training subject did, which then counts as missed). Raises HarError for bad input and a
    non-finite loss (last.pt keeps the last good epoch), ``TrainingInterrupted`` on Ctrl-C.

    Under torchrun (``WORLD_SIZE`` set; :mod:`har.train.distributed`) this process trains its
    rank's share of every batch; rank 0 writes the run folder and returns the summary, the
    other ranks return ``{}``.
    """
    import torch

    from har.checkpoint import check_resumable, describe
    from har.train import distributed
    from har.train.loop import Trainer

    world = distributed.world()
    log = log or (lambda line: None)
    if not world.main:                  # rank 0 alone prints, draws progress and writes
        log, on_epoch, progress = (lambda line: None), None, False
    setup = prepare_run(data, model, resume=resume, config=config, hparams=hparams,
                        check_labels=check_labels, mmap=world.distributed, **options)
    prepared, model, hparams, opts, ckpt = (setup.prepared, setup.model, setup.hparams,
                                            setup.opts, setup.ckpt)
    splits, input_shape = setup.splits, setup.input_shape

    threads = torch.get_num_threads()
    if opts.threads or world.distributed:
        torch.set_num_threads(opts.threads or distributed.threads_per_process(world))
    trainer = None
    try:
        trainer = Trainer(splits, model, prepared.window, len(prepared.channels),
                          len(prepared.class_names), hparams, opts, ckpt, world)
        if ckpt is not None:
            check_resumable(ckpt, resume, model, input_shape, prepared.class_names,
                            trainer.net.config)
        run = RunDir.open(out, model, resume) if world.main else None
        if ckpt is not None and run is not None:
            run.carry_best(resume, ckpt)
        digest = hashlib.sha256((prepared.path / "meta.json").read_bytes()).hexdigest()
        if ckpt is not None and ckpt.get("data_digest") != digest:
            log(f"note: {prepared.path}/meta.json differs from the data {resume} was trained "
                "on; the curve continues on the new data")
        training = {**opts.to_dict(), "data": str(Path(prepared.path).resolve())}
        base = describe(prepared, trainer.net.config, input_shape, training, digest)
        if run is not None:
            _write_config(run, trainer, training, digest, resume, splits)
        if not trainer.has_val:
            log(f"note: {prepared.path} has no val split: the val_* columns stay empty and "
                "best.pt is the last epoch; prepare with --val-subjects to select by validation "
                "macro F1")
        if run is not None:
            log(_start_line(model, trainer, splits, run))
        if world.distributed:
            log(_world_line(world, opts.batch_size, trainer))
        if run is not None and not run.is_resumed_in_place(resume):
            trainer.save(run, base)  # Ctrl-C in the first epoch still leaves a resume point
        try:
            stopped = trainer.train(run, base, on_epoch, progress, log)
        except RuntimeError as exc:           # a collective failed: another rank is gone
            lost = distributed.lost_rank(exc, world)
            if lost is None:
                raise
            raise lost from None
        return _finish(run, trainer, prepared, model, stopped, log) if run is not None else {}
    finally:
        torch.set_num_threads(threads)
        if trainer is not None and trainer.joined_group:
            distributed.stop()


@dataclass
class RunSetup:
    """What a run trains, resolved and checked before any training (:func:`prepare_run`)."""

    prepared: Any                      # PreparedData
    model: str
    hparams: Dict[str, Any]
    opts: TrainOptions
    ckpt: Optional[Dict[str, Any]]
    splits: Dict[str, Any]
    input_shape: List[int]


def prepare_run(data=None, model: Optional[str] = None, *, resume=None, config=None,
                hparams: Optional[Dict[str, Any]] = None, check_labels: bool = True,
                mmap: bool = False, **options: Any) -> RunSetup:
    """:func:`fit`'s arguments resolved (options over ``config`` over the packaged defaults, or
    the checkpoint's) and checked against the prepared folder: every input error ``fit`` can
    raise before training, raised here (``har train --nproc`` calls it once before starting
    the processes). ``mmap`` maps the arrays instead of reading them."""
    from data_prep.store import PreparedData, load_prepared
    from har.checkpoint import check_resumable, load_checkpoint
    from har.models import list_models
    from har.train import options as layers

    ckpt = load_checkpoint(resume) if resume is not None else None
    table, config_hparams = layers.read_config(config) if config is not None else ({}, {})
    run_keys = {k: table.pop(k) for k in layers.RUN_KEYS if k in table}
    if ckpt is not None:
        model = model or run_keys.get("model") or ckpt["model"]["name"]
        data = data if data is not None else run_keys.get("data") or ckpt["training"].get("data")
        hparams = {**_hparams_of(ckpt["model"]), **config_hparams, **(hparams or {})}
        opts = layers.resolve_resumed({**table, **options}, ckpt["training"], resume)
    else:
        packaged = layers.defaults(model or run_keys.get("model"))
        model = model or run_keys.get("model") or packaged.pop("model")
        data = data if data is not None else run_keys.get("data", packaged.get("data"))
        for key in layers.RUN_KEYS:
            packaged.pop(key, None)
        hparams = {**layers.model_overrides(model), **config_hparams, **(hparams or {})}
        opts = layers.resolve(options, table, packaged)
    if model not in list_models():
        raise HarError(f"--model {model!r} is unknown; choose one of {', '.join(list_models())}")
    if data is None:
        raise HarError("--data: pass the prepared folder to train on (made by 'har prepare')")
    prepared = data if isinstance(data, PreparedData) else load_prepared(data, mmap=mmap)
    splits = {k: s for k, s in prepared.splits.items() if len(s) > 0}
    if "train" not in splits:
        raise HarError(f"{prepared.path}: the train split is empty; prepare it again with fewer "
                       "--val-subjects/--test-subjects")
    if check_labels:
        _check_labels(prepared, splits)
    if opts.early_stop and "val" not in splits:
        raise HarError(f"--early-stop needs a val split, and {prepared.path} has none; prepare "
                       "it with --val-subjects or pass --early-stop 0")
    input_shape = [1, prepared.window, len(prepared.channels)]
    if ckpt is not None:
        check_resumable(ckpt, resume, model, input_shape, prepared.class_names)
    return RunSetup(prepared, model, hparams, opts, ckpt, splits, input_shape)


def _world_line(world, batch_size: int, trainer) -> str:
    """How the global batch is shared among the processes (and whether it divides)."""
    low, extra = divmod(batch_size, world.size)
    shares = f"{low}" if not extra else f"{low + 1} or {low}"
    note = ("" if not extra else f"; note: --batch-size {batch_size} does not divide among "
            f"{world.size} processes, so shares differ by one window (the step is the same)")
    return (f"{world.size} processes ({'NCCL' if trainer.device.type == 'cuda' else 'gloo'}, "
            f"{'synchronised' if trainer.opts.sync_bn else 'per-process'} BatchNorm "
            f"statistics): global batch {batch_size}, {shares} windows per process{note}")


def _start_line(model: str, trainer, splits, run: RunDir) -> str:
    import torch

    from har.cpu import cpu_class
    from har.device import device_name

    parameters = sum(p.numel() for p in trainer.net.parameters())
    cls = f"{cpu_class()} CPU, " if trainer.device.type == "cpu" else ""
    return (f"training {model} ({parameters:,} parameters) on {device_name(trainer.device)} "
            f"({trainer.device.type}, {cls}{trainer.precision}, {torch.get_num_threads()} "
            "threads): "
            f"{', '.join(f'{len(s)} {k}' for k, s in splits.items())} windows -> {run.path}")


def _write_config(run: RunDir, trainer, training, digest, resume, splits) -> None:
    import numpy as np
    import torch

    from har.device import device_name, precision_choice
    from har.train.records import run_config
    from harkit.files import write_json

    device = {"type": trainer.device.type, "name": device_name(trainer.device),
              "amp": trainer.precision, **precision_choice(trainer.device, trainer.opts.amp),
              "channels_last": trainer.opts.channels_last, "threads": torch.get_num_threads(),
              "processes": trainer.world.size}
    write_json(run.config, run_config(training, trainer.net.config, device, digest, resume,
                                      {k: len(s) for k, s in splits.items()},
                                      {"torch": torch.__version__, "numpy": np.__version__}))


def _finish(run: RunDir, trainer, prepared, model: str, stopped: str, log) -> Dict[str, Any]:
    """curves.png and summary.json; the test split scored by ``har evaluate``'s function (on
    rank 0 alone under torchrun: the whole split, the single-process figures)."""
    from har.evaluate import evaluate
    from har.plots import plot_curves
    from har.train.records import summary, write_summary

    state = trainer.state
    best_row = state.history[state.best_epoch - 1] if state.best_epoch else None
    test = None
    if "test" in prepared.splits and len(prepared["test"]) and run.best.is_file():
        report = evaluate(run.best, prepared, "test", device=trainer.device)
        test = {"loss": report["loss"], **report["overall"], "windows": report["windows"]}
    result = summary(model, run.path, state.epoch, stopped, state.best_epoch, best_row,
                     trainer.has_val, test)
    try:
        plot_curves(run.path)
    except HarError as exc:
        log(f"note: no curves.png: {exc}; then run 'har plot {run.path}'")
    write_summary(run.path, result)
    return result


def _hparams_of(model_config: Dict[str, Any]) -> Dict[str, Any]:
    shape = ("name", "window_steps", "channels", "num_classes")
    return {k: v for k, v in model_config.items() if k not in shape}


def _check_labels(prepared, splits) -> None:
    """HarError when val/test hold classes that the train split lacks."""
    import numpy as np

    names = prepared.class_names
    train = set(np.unique(splits["train"].y).tolist())
    for split in ("val", "test"):
        if split not in splits:
            continue
        extra = sorted(set(np.unique(splits[split].y).tolist()) - train)
        if extra:
            listed = ", ".join(repr(names[k]) for k in extra)
            raise HarError(f"{prepared.path}: the {split} split holds class(es) {listed} that the "
                           "train split lacks; prepare again with other "
                           "--val-subjects/--test-subjects so that train has every class")
