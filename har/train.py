"""``fit``: train a registered model on a prepared folder, one metrics row per epoch.

The seed's recipe: AdamW (lr 5e-4, weight decay 1e-3), batch 128, cross-entropy (optionally
class-weighted), StepLR (step ``epochs // 3`` epochs, gamma 0.5), 100 epochs; the defaults live in
``configs/<model>.toml``. Batches are sliced straight from the split's tensors (no DataLoader) in
an order drawn from a seeded ``torch.Generator``, so the same seed on the CPU gives the same
metrics.csv (timing columns aside) and ``resume`` continues the same curve.

After every epoch ``fit`` evaluates the val split (eval mode, ``torch.inference_mode``), measures
single-sample latency (:mod:`har.latency`) and writes to the run folder, each file atomically:
``last.pt``, ``best.pt`` (best val macro F1), ``metrics.csv`` (:data:`METRICS_COLUMNS`),
``config.json``; at the end ``curves.png`` (:func:`har.plots.plot_curves`) and ``summary.json``
(best epoch, its val scores, the test split's scores with ``best.pt``). Without a val split the
``val_*`` columns stay empty, ``best.pt`` is the last epoch and early stopping is refused (a note
says so once).

Timing columns (seconds / ms): ``epoch_s`` is the training pass over the train split,
``val_infer_s`` the forward passes over the val split, ``latency_ms`` the median single-window
forward pass.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import platform
import random
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from har import __version__
from har.checkpoint import (check_resumable, describe, load_checkpoint, rng_state,
                            save_checkpoint, set_rng_state)
from har.config import default_config_path, read_section
from har.device import amp_dtype, autocast, device_name, grad_scaler, resolve_device, synchronize
from har.errors import HarError
from har.files import copy_atomic, write_atomic
from har.latency import MIN_RUNS, single_sample_latency_ms
from har.metrics import classification_scores
from har.progress import progress_bar

METRICS_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_precision_macro",
                   "val_recall_macro", "val_f1_macro", "val_f1_weighted", "epoch_s",
                   "val_infer_s", "latency_ms")
TIMING_COLUMNS = ("epoch_s", "val_infer_s", "latency_ms")
#: Options a resumed run may change; the others are the checkpoint's (the curve's definition).
RESUMABLE = ("epochs", "early_stop", "device", "amp", "threads", "channels_last", "compile",
             "latency_runs")


@dataclass
class TrainOptions:
    """Every training choice (defaults: the seed recipe; ``configs/<model>.toml`` sets them)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-3
    lr_step: int = 0              # StepLR step in epochs; 0 = max(1, epochs // 3)
    lr_gamma: float = 0.5
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda
    amp: Optional[bool] = None    # None = the device's default (har.device.amp_dtype)
    class_weights: bool = False   # weight the loss by inverse train-class frequency
    early_stop: int = 0           # stop after N epochs without a better val macro F1; 0 = off
    threads: Optional[int] = None  # torch.set_num_threads; None = torch's default
    channels_last: bool = True    # NHWC activations: faster oneDNN / cuDNN convolutions
    compile: bool = False         # torch.compile the training forward (minutes of compiling)
    latency_runs: int = MIN_RUNS

    @property
    def step_epochs(self) -> int:
        return self.lr_step or max(1, self.epochs // 3)

    def validate(self) -> "TrainOptions":
        """HarError naming the option (or config key), the bad value and the accepted range."""
        for name, low in (("epochs", 1), ("batch_size", 1), ("lr_step", 0), ("seed", 0),
                          ("early_stop", 0), ("latency_runs", MIN_RUNS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise HarError(f"{_option(name, value)} is invalid; pass an integer >= {low}")
        for name, accepted, ok in (
                ("lr", "a number > 0", lambda v: v > 0),
                ("weight_decay", "a number >= 0", lambda v: v >= 0),
                ("lr_gamma", "a number in (0, 1]", lambda v: 0 < v <= 1)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not ok(value)):
                raise HarError(f"{_option(name, value)} is invalid; pass {accepted}")
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads < 1):
            raise HarError(f"{_option('threads', self.threads)} is invalid; pass an integer >= 1")
        for name in ("amp", "class_weights", "channels_last", "compile"):
            value = getattr(self, name)
            if value not in ((None, True, False) if name == "amp" else (True, False)):
                raise HarError(f"{_option(name, value)} is invalid; use true or false"
                               + (' or "auto"' if name == "amp" else ""))
        return self


#: TrainOptions fields that are also `har train` options (the others are config keys only).
CLI_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "seed", "device", "amp",
               "class_weights", "early_stop", "threads")


def _option(name: str, value: Any) -> str:
    """How the user set ``name``: ``--batch-size 0`` or ``lr_gamma = 2 in [train]``."""
    if name in CLI_OPTIONS:
        return f"--{name.replace('_', '-')} {value!r}"
    return f"{name} = {value!r} in [train]"


# --------------------------------------------------------------------------- config
def load_train_config(model: str, path: Optional[Path] = None) -> Tuple[Dict[str, Any], Dict]:
    """``([train] options, [model] hyper-parameters)`` of ``path`` or ``configs/<model>.toml``.

    TOML has no null: ``amp = "auto"`` and ``threads = 0`` mean the defaults. A registered model
    without a packaged config trains with :class:`TrainOptions` defaults.
    """
    if path is None and not default_config_path(model).is_file():
        return {}, {}
    table = read_section(model, "train", path)
    try:
        hparams = read_section(model, "model", path)
    except HarError:
        hparams = {}
    if table.get("amp") == "auto":
        table["amp"] = None
    if table.get("threads") == 0:
        table["threads"] = None
    known = {f.name for f in fields(TrainOptions)} | {"data", "model"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise HarError(f"--config: unknown key(s) {', '.join(unknown)} in [train]; known keys: "
                       f"{', '.join(sorted(known))}")
    return table, hparams


# --------------------------------------------------------------------------- fit
class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: ``checkpoint`` (last.pt) holds ``epoch`` completed epochs."""

    def __init__(self, checkpoint: Path, epoch: int, interrupted_epoch: int) -> None:
        super().__init__(f"interrupted in epoch {interrupted_epoch}")
        self.checkpoint, self.epoch, self.interrupted_epoch = checkpoint, epoch, interrupted_epoch


@dataclass
class _State:
    """Progress that survives a resume (stored in every checkpoint)."""

    epoch: int = 0                 # completed epochs
    best_val_f1_macro: float = -1.0
    best_epoch: int = 0
    since_best: int = 0
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


def fit(data=None, model: Optional[str] = None, *, out=None, resume=None, config=None,
        hparams: Optional[Dict[str, Any]] = None, log: Optional[Callable[[str], None]] = None,
        on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None, progress: bool = False,
        **options: Any) -> Dict[str, Any]:
    """Train ``model`` (default ``resnet``) on the prepared folder ``data``; return the summary.

    ``options`` are :class:`TrainOptions` fields and ``hparams`` the model's hyper-parameters;
    unset ones (and ``data``, ``model``) take the values of the TOML file ``config`` (default:
    the packaged ``configs/<model>.toml``), or on ``resume`` (a last.pt/best.pt path) the
    checkpoint's, which also supplies ``data``, ``model`` and ``hparams`` when not given. A
    resumed run may change only :data:`RESUMABLE` options (``epochs`` is the new total); its run
    folder defaults to the checkpoint's folder.
    ``out`` defaults to ``runs/<model>-<UTC time>``; an existing non-empty folder is refused.
    ``log(line)`` receives notes, ``on_epoch(row)`` each metrics row (a :data:`METRICS_COLUMNS`
    dict). Raises HarError for bad input and a non-finite loss (last.pt keeps the last good
    epoch), :class:`TrainingInterrupted` on Ctrl-C.
    """
    from data_prep.store import PreparedData, load_prepared
    from har.models import list_models

    log = log or (lambda line: None)
    ckpt = load_checkpoint(resume) if resume is not None else None
    table, config_hparams = {}, {}
    if config is not None or ckpt is None:
        table, config_hparams = load_train_config(model or "resnet", config)
    config_model, config_data = table.pop("model", None), table.pop("data", None)
    if ckpt is not None:
        model = model or ckpt["model"]["name"]
        data = data if data is not None else ckpt["training"].get("data")
        hparams = {**_hparams_of(ckpt["model"]), **config_hparams, **(hparams or {})}
        opts = _resolve_options({**table, **options}, {}, ckpt, resume)
    else:
        hparams = {**config_hparams, **(hparams or {})}
        opts = _resolve_options(options, table, None, None)
    model = model or config_model or "resnet"
    data = data if data is not None else config_data
    if model not in list_models():
        raise HarError(f"--model {model!r} is unknown; choose one of {', '.join(list_models())}")
    if data is None:
        raise HarError("--data: pass the prepared folder to train on (made by 'har prepare')")
    prepared = data if isinstance(data, PreparedData) else load_prepared(data)
    splits = {k: s for k, s in prepared.splits.items() if len(s) > 0}
    if "train" not in splits:
        raise HarError(f"{prepared.path}: the train split is empty; prepare it again with fewer "
                       "--val-subjects/--test-subjects")
    _check_labels(prepared, splits)
    if opts.early_stop and "val" not in splits:
        raise HarError(f"--early-stop needs a val split, and {prepared.path} has none; prepare "
                       "it with --val-subjects or pass --early-stop 0")
    if ckpt is not None:
        check_resumable(ckpt, resume, model, [1, prepared.window, len(prepared.channels)],
                        prepared.class_names)
    threads = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    try:
        run = _Run(prepared, splits, model, hparams, opts, ckpt, resume, out, log)
        return run.train(on_epoch, progress)
    finally:
        torch.set_num_threads(threads)


class _Run:
    """One training run: model, optimizer, scheduler, scaler, RNG, progress and run folder."""

    def __init__(self, prepared, splits, model: str, hparams, opts: TrainOptions, ckpt, resume,
                 out, log) -> None:
        from har.models import create_model

        self.opts, self.log = opts, log
        self.num_classes = len(prepared.class_names)
        self.input_shape = [1, prepared.window, len(prepared.channels)]
        self.device = resolve_device(opts.device)
        self.dtype = amp_dtype(self.device, opts.amp)
        _seed_everything(opts.seed)
        self.net = create_model(model, prepared.window, len(prepared.channels), self.num_classes,
                                **hparams)
        if ckpt is not None:
            check_resumable(ckpt, resume, model, self.input_shape, prepared.class_names,
                            self.net.config)
        self.memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
        self.net.to(self.device, memory_format=self.memory_format)
        # compiled for the training steps only; eval, latency and state_dict use the eager net
        self.train_net = torch.compile(self.net) if opts.compile else self.net
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=opts.lr,
                                           weight_decay=opts.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, opts.step_epochs,
                                                         opts.lr_gamma)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.shuffle = torch.Generator().manual_seed(opts.seed)
        self.state = _State()
        if ckpt is not None:
            self.state = _restore(ckpt, self.net, self.optimizer, self.scheduler, self.scaler,
                                  self.shuffle, opts)

        self.dir = _run_dir(out, model, resume)
        if ckpt is not None:
            _carry_best(Path(resume), self.dir, ckpt)
        digest = hashlib.sha256((prepared.path / "meta.json").read_bytes()).hexdigest()
        if ckpt is not None and ckpt.get("data_digest") != digest:
            log(f"note: {prepared.path}/meta.json differs from the data {resume} was trained "
                "on; the curve continues on the new data")
        training = {**dataclasses.asdict(opts), "data": str(Path(prepared.path).resolve())}
        self.base = describe(prepared, self.net.config, self.input_shape, training, digest)
        _write_json(self.dir / "config.json", _run_config(
            training, self.net, self.device, self.dtype, digest, resume, splits))

        self.tensors = _to_tensors(splits, self.device)
        self.has_val = "val" in self.tensors
        if not self.has_val:
            log(f"note: {prepared.path} has no val split: the val_* columns stay empty and "
                "best.pt is the last epoch; prepare with --val-subjects to select by validation "
                "macro F1")
        weight = (_class_weights(splits["train"].y, self.num_classes, self.device)
                  if opts.class_weights else None)
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        log(f"training {model} ({sum(p.numel() for p in self.net.parameters()):,} parameters) "
            f"on {device_name(self.device)} ({self.device.type}, {_precision(self.dtype)}, "
            f"{torch.get_num_threads()} threads): "
            f"{', '.join(f'{len(s)} {k}' for k, s in splits.items())} windows -> {self.dir}")
        self.saved_epoch = self.state.epoch
        if ckpt is None or Path(resume).resolve() != (self.dir / "last.pt").resolve():
            self.save()  # Ctrl-C in the first epoch still leaves a resume point in the folder

    def save(self) -> None:
        """Write last.pt (atomic); ``saved_epoch`` is the epoch it holds."""
        s = self.state
        save_checkpoint(self.dir / "last.pt", {
            **self.base, "epoch": s.epoch, "best_val_f1_macro": s.best_val_f1_macro,
            "best_epoch": s.best_epoch, "epochs_since_best": s.since_best, "history": s.history,
            "state_dict": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rng_state(self.shuffle)})
        self.saved_epoch = s.epoch

    def train(self, on_epoch, progress: bool) -> Dict[str, Any]:
        """Epochs until ``opts.epochs`` or early stop; then summary.json."""
        state, opts = self.state, self.opts
        _write_metrics(self.dir / "metrics.csv", state.history)
        stopped = "completed"
        try:
            while state.epoch < opts.epochs:
                row = self.epoch(state.epoch + 1, progress)
                _check_finite(row, state, opts, self.dir)
                improved = _record(row, state, self.has_val)
                self.save()
                if improved:
                    copy_atomic(self.dir / "last.pt", self.dir / "best.pt")
                _write_metrics(self.dir / "metrics.csv", state.history)
                if on_epoch is not None:
                    on_epoch(row)
                if opts.early_stop and state.since_best >= opts.early_stop:
                    stopped = "early_stop"
                    self.log(f"note: early stop after epoch {state.epoch}: val macro F1 has not "
                             f"improved for {opts.early_stop} epochs (best "
                             f"{state.best_val_f1_macro:.4f} at epoch {state.best_epoch})")
                    break
        except KeyboardInterrupt:
            # last.pt is only ever replaced atomically: it holds saved_epoch, whole
            raise TrainingInterrupted(self.dir / "last.pt", self.saved_epoch,
                                      self.saved_epoch + 1) from None
        summary = self.summary(stopped)
        self.plot()
        _write_json(self.dir / "summary.json", summary)
        return summary

    def plot(self) -> None:
        """curves.png from metrics.csv; without matplotlib a note says how to draw it later."""
        from har.plots import plot_curves

        try:
            plot_curves(self.dir)
        except HarError as exc:
            self.log(f"note: no curves.png: {exc}; then run 'har plot {self.dir}'")

    def epoch(self, epoch: int, progress: bool) -> Dict[str, Any]:
        """Train one epoch, evaluate val, measure latency; return the metrics row."""
        opts, device, net = self.opts, self.device, self.train_net
        x, y = self.tensors["train"]
        n = y.shape[0]
        order = torch.randperm(n, generator=self.shuffle)
        batches = [order[i:i + opts.batch_size] for i in range(0, n, opts.batch_size)]
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        with progress_bar(length=len(batches), label=f"epoch {epoch}", enabled=progress) as bar:
            for idx in batches:
                idx = idx.to(x.device)
                xb = x[idx].to(device, non_blocking=True, memory_format=self.memory_format)
                yb = y[idx].to(device, non_blocking=True)
                loss = train_step(net, self.optimizer, self.scaler, self.criterion, xb, yb,
                                  self.dtype)
                loss_sum += loss * len(idx)
                bar.update(1)
        self.scheduler.step()
        train_loss = float(loss_sum) / n  # the one host sync of the epoch
        row: Dict[str, Any] = dict.fromkeys(METRICS_COLUMNS)
        row.update(epoch=epoch, train_loss=train_loss, epoch_s=time.perf_counter() - t0)
        if not math.isfinite(train_loss):
            return row
        if self.has_val:
            result = self.evaluate("val")
            row.update(val_loss=result["loss"], val_infer_s=result["seconds"],
                       **{f"val_{k}": v for k, v in result["scores"].items()})
        row["latency_ms"] = single_sample_latency_ms(self.net, self.input_shape,
                                                     runs=opts.latency_runs, amp_dtype=self.dtype)
        return row

    def evaluate(self, split: str) -> Dict[str, Any]:
        return evaluate(self.net, *self.tensors[split], device=self.device, amp_dtype=self.dtype,
                        batch_size=self.opts.batch_size, num_classes=self.num_classes)

    def summary(self, stopped: str) -> Dict[str, Any]:
        """Best epoch and its val scores; the test split's scores with best.pt's weights."""
        state = self.state
        best = state.history[state.best_epoch - 1] if state.best_epoch else None
        test = None
        if "test" in self.tensors and (self.dir / "best.pt").is_file():
            ckpt = torch.load(self.dir / "best.pt", map_location=self.device, weights_only=True)
            self.net.load_state_dict(ckpt["state_dict"])
            result = self.evaluate("test")
            test = {"loss": result["loss"], **result["scores"],
                    "windows": int(self.tensors["test"][1].shape[0])}
        best_val = None
        if best is not None and self.has_val:
            best_val = {k[4:]: best[k] for k in METRICS_COLUMNS
                        if k.startswith("val_") and k != "val_infer_s"}
        return {
            "model": self.net.config["name"], "run_dir": str(self.dir), "epochs": state.epoch,
            "stopped": stopped,
            "selection": "best val macro F1" if self.has_val else "last epoch (no val split)",
            "best_epoch": state.best_epoch, "best_val": best_val, "test": test,
            "latency_ms": None if best is None else best["latency_ms"],
            "checkpoint": str(self.dir / "best.pt"),
        }


def train_step(net: nn.Module, optimizer, scaler, criterion, xb: torch.Tensor, yb: torch.Tensor,
               amp_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """One optimization step on a batch ``xb`` ``[B, 1, T, C]``, ``yb`` ``[B]`` (net in train
    mode, on the batch's device); returns the detached loss, without a host sync."""
    with autocast(xb.device, amp_dtype):
        loss = criterion(net(xb).float(), yb)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _check_finite(row, state: _State, opts: TrainOptions, run_dir: Path) -> None:
    """HarError when the epoch's training loss is NaN/inf; last.pt still holds the last good
    epoch because it is written only after this check."""
    if math.isfinite(row["train_loss"]):
        return
    kept = (f"{run_dir / 'last.pt'} keeps epoch {state.epoch}, the last good one" if state.epoch
            else "no epoch finished")
    raise HarError(f"epoch {row['epoch']}: the training loss became {row['train_loss']} "
                   f"(diverged); train again with a lower --lr than {opts.lr:g} (e.g. --lr "
                   f"{opts.lr / 10:g}); {kept}")


def _record(row, state: _State, has_val: bool) -> bool:
    """Append ``row`` to the history; return whether it is the new best (always without val)."""
    state.epoch = row["epoch"]
    state.history.append(row)
    improved = not has_val or row["val_f1_macro"] > state.best_val_f1_macro
    if improved:
        state.best_val_f1_macro = row["val_f1_macro"] if has_val else -1.0
        state.best_epoch, state.since_best = row["epoch"], 0
    else:
        state.since_best += 1
    return improved


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, device: torch.device,
             amp_dtype: Optional[torch.dtype] = None, batch_size: int = 256,
             num_classes: int) -> Dict[str, Any]:
    """Eval-mode forward passes over ``x`` ``[N, 1, T, C]`` with labels ``y`` ``[N]``:
    ``{"loss": mean unweighted cross-entropy, "scores": classification scores,
    "predictions": int64 [N] numpy, "seconds": wall time of the passes}``."""
    was_training = model.training
    model.eval()
    preds, loss_sum = [], torch.zeros((), dtype=torch.float64, device=device)
    synchronize(device)
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(device, amp_dtype):
        for i in range(0, y.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device, non_blocking=True)
            yb = y[i:i + batch_size].to(device, non_blocking=True)
            logits = model(xb).float()
            loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum")
            preds.append(logits.argmax(1))
    synchronize(device)
    seconds = time.perf_counter() - t0
    model.train(was_training)
    predictions = torch.cat(preds).cpu().numpy()
    return {"loss": float(loss_sum) / y.shape[0], "predictions": predictions, "seconds": seconds,
            "scores": classification_scores(y.cpu().numpy(), predictions, num_classes)}


# --------------------------------------------------------------------------- helpers
def _resolve_options(options: Dict[str, Any], packaged: Dict[str, Any], ckpt, resume
                     ) -> TrainOptions:
    """A fresh run: ``options`` over the packaged config's [train] table over the defaults; a
    resumed run: ``options`` (only :data:`RESUMABLE` ones may differ) over the checkpoint's."""
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"fit() got unknown option(s) {', '.join(unknown)}")
    if ckpt is None:
        return TrainOptions(**{**packaged, **options}).validate()
    saved = {k: v for k, v in ckpt["training"].items() if k in known}
    for key, value in options.items():
        if key not in RESUMABLE and key in saved and value != saved[key]:
            raise HarError(f"{_option(key, value)} differs from {saved[key]!r} in --resume "
                           f"{resume}; a resumed run keeps its training options (drop it, or "
                           "start a new run without --resume)")
    return TrainOptions(**{**saved, **options}).validate()


def _hparams_of(model_config: Dict[str, Any]) -> Dict[str, Any]:
    shape = ("name", "window_steps", "channels", "num_classes")
    return {k: v for k, v in model_config.items() if k not in shape}


def _check_labels(prepared, splits) -> None:
    """HarError when val/test hold classes that the train split lacks."""
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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _restore(ckpt, net, optimizer, scheduler, scaler, shuffle, opts: TrainOptions) -> _State:
    """Load weights, optimizer, scheduler, scaler and RNG states; return the saved progress.

    When ``epochs`` changed and the step is automatic (``lr_step = 0``), the StepLR schedule is
    re-derived for the new total: from here the lr is ``lr * gamma ** (epoch // step)``.
    """
    net.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"], shuffle)
    if scheduler.step_size != opts.step_epochs:
        scheduler.step_size = opts.step_epochs
        factor = opts.lr_gamma ** (ckpt["epoch"] // opts.step_epochs)
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base_lr * factor
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    return _State(ckpt["epoch"], ckpt["best_val_f1_macro"], ckpt.get("best_epoch", 0),
                  ckpt.get("epochs_since_best", 0), list(ckpt.get("history", [])))


def _run_dir(out, model: str, resume) -> Path:
    """The run folder: ``out``, or the checkpoint's folder on resume, or ``runs/<model>-<UTC>``.
    A non-empty folder is accepted only when it is the resumed checkpoint's own."""
    if out is None and resume is not None:
        out = Path(resume).parent
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{model}-{stamp}"
        n = 1
        while out.exists():
            n += 1
            out = Path("runs") / f"{model}-{stamp}-{n}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HarError(f"--out {out} is a file; choose a folder")
    own = resume is not None and out.resolve() == Path(resume).resolve().parent
    if out.is_dir() and any(out.iterdir()) and not own:
        raise HarError(f"--out {out} already exists and is not empty; choose another --out, or "
                       f"continue its run with --resume {out / 'last.pt'}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _carry_best(resume: Path, run_dir: Path, ckpt) -> None:
    """best.pt of a resumed run: the checkpoint itself when it holds the best epoch (best.pt is
    then its copy, even if a Ctrl-C came between writing last.pt and copying it), else the
    checkpoint folder's best.pt when the run folder has none, so best.pt always exists."""
    best = run_dir / "best.pt"
    if ckpt["epoch"] > 0 and ckpt["epoch"] == ckpt.get("best_epoch"):
        if resume.resolve() != best.resolve():
            copy_atomic(resume, best)
        return
    source = resume.parent / "best.pt"
    if not best.exists() and source.is_file():
        copy_atomic(source, best)


def _to_tensors(splits, device: torch.device) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Each split as ``(x [N, 1, T, C] float32, y [N] int64)``: on the GPU when it fits (sliced
    there, no host copies per batch), else kept on the host (pinned) and copied per batch."""
    out = {}
    for name, split in splits.items():
        x = torch.from_numpy(np.ascontiguousarray(split.x)).unsqueeze(1)
        y = torch.from_numpy(np.ascontiguousarray(split.y, dtype=np.int64))
        if device.type == "cuda":
            try:
                x, y = x.to(device), y.to(device)
            except torch.cuda.OutOfMemoryError:
                x, y = x.pin_memory(), y.pin_memory()
        out[name] = (x, y)
    return out


def _class_weights(y: np.ndarray, num_classes: int, device) -> torch.Tensor:
    """``N / (K_present * n_k)`` per class (sklearn's "balanced"), 0 for absent classes."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _precision(dtype) -> str:
    return "fp32" if dtype is None else f"{str(dtype).replace('torch.', '')} autocast"


def _run_config(training, net, device, dtype, digest, resume, splits) -> Dict[str, Any]:
    return {
        "model": dict(net.config), "training": training,
        "data": {"path": training["data"], "meta_sha256": digest,
                 "windows": {k: len(s) for k, s in splits.items()}},
        "device": {"type": device.type, "name": device_name(device), "amp": _precision(dtype),
                   "threads": torch.get_num_threads()},
        "versions": {"harkit": __version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "resumed_from": None if resume is None else str(resume),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- files
def _write_json(path: Path, data) -> None:
    import json

    write_atomic(path, json.dumps(data, indent=2) + "\n")


def _write_metrics(path: Path, history: List[Dict[str, Any]]) -> None:
    """metrics.csv: :data:`METRICS_COLUMNS`, 8 significant digits, empty for "no value"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in history:
        writer.writerow(["" if row[c] is None else (row[c] if c == "epoch" else f"{row[c]:.8g}")
                         for c in METRICS_COLUMNS])
    write_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------- printing
EPOCH_HEADER = (f"{'epoch':>5}  {'train_loss':>10}  {'val_loss':>8}  {'acc':>6}  {'P_macro':>7}  "
                f"{'R_macro':>7}  {'F1_macro':>8}  {'F1_w':>6}  {'epoch_s':>7}  {'val_s':>6}  "
                f"{'lat_ms':>7}")


def format_epoch_row(row: Dict[str, Any]) -> str:
    """One printed line per epoch, aligned with :data:`EPOCH_HEADER`."""
    def num(key, width, digits):
        value = row.get(key)
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    return (f"{row['epoch']:>5}  {num('train_loss', 10, 4)}  {num('val_loss', 8, 4)}  "
            f"{num('val_accuracy', 6, 4)}  {num('val_precision_macro', 7, 4)}  "
            f"{num('val_recall_macro', 7, 4)}  {num('val_f1_macro', 8, 4)}  "
            f"{num('val_f1_weighted', 6, 4)}  {num('epoch_s', 7, 2)}  {num('val_infer_s', 6, 3)}  "
            f"{num('latency_ms', 7, 2)}")
