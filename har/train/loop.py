"""The epoch loop: model, optimizer, scheduler, scaler and RNG of one run, and its epochs.

Batches are sliced straight from the split's tensors (no DataLoader) in an order drawn from a
seeded ``torch.Generator``, so the same seed on the CPU gives the same metrics.csv (timing
columns aside) and a resume continues the same curve. The learning rate is a closed-form
function of the epoch (StepLR's ``lr * gamma ** (epoch // step)``), so a resume rebuilds the
scheduler at the saved epoch through the public API, also when ``--epochs`` (and with it the
automatic step) changed. After every epoch the val split is scored (:mod:`har.scoring`, fp32)
and one window's latency is timed on the training device in the training precision
(:mod:`har.latency`). Under torchrun each process trains its share of every global batch
(:mod:`har.train.distributed`); rank 0 alone writes and times.

:class:`Trainer` writes nothing itself except through :meth:`Trainer.save` and what
:meth:`Trainer.train` records; the run folder is made by :class:`har.train.rundir.RunDir`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from har.checkpoint import rng_state, save_checkpoint, set_rng_state
from har.device import amp_dtype, autocast, grad_scaler, resolve_device, synchronize
from har.latency import single_sample_latency_ms
from har.scoring import logits, score, score_logits
from har.train import distributed
from har.train.distributed import World
from har.train.options import TrainOptions
from har.train.records import METRICS_COLUMNS, write_metrics
from har.train.rundir import RunDir
from harkit.errors import HarError
from harkit.progress import progress_bar


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: ``checkpoint`` (last.pt) holds ``epoch`` completed epochs."""

    def __init__(self, checkpoint, epoch: int, interrupted_epoch: int) -> None:
        super().__init__(f"interrupted in epoch {interrupted_epoch}")
        self.checkpoint, self.epoch, self.interrupted_epoch = checkpoint, epoch, interrupted_epoch


@dataclass
class State:
    """Progress that survives a resume (stored in every checkpoint)."""

    epoch: int = 0                 # completed epochs
    best_val_f1_macro: float = -1.0
    best_epoch: int = 0
    since_best: int = 0
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, ckpt: Dict[str, Any]) -> "State":
        # earlier checkpoints call the training latency "latency_ms"
        history = [{("train_latency_ms" if k == "latency_ms" else k): v for k, v in row.items()}
                   for row in ckpt.get("history", [])]
        return cls(ckpt["epoch"], ckpt["best_val_f1_macro"], ckpt.get("best_epoch", 0),
                   ckpt.get("epochs_since_best", 0), history)

    def record(self, row: Dict[str, Any], has_val: bool) -> bool:
        """Append ``row``; return whether it is the new best (always, without a val split)."""
        self.epoch = row["epoch"]
        self.history.append(row)
        improved = not has_val or row["val_f1_macro"] > self.best_val_f1_macro
        if improved:
            self.best_val_f1_macro = row["val_f1_macro"] if has_val else -1.0
            self.best_epoch, self.since_best = row["epoch"], 0
        else:
            self.since_best += 1
        return improved


def make_scheduler(optimizer: torch.optim.Optimizer, opts: TrainOptions, epoch: int = 0
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """StepLR's schedule in closed form, positioned after ``epoch`` completed epochs: the lr of
    the next epoch is ``lr * gamma ** (epoch // step)``. At ``epoch`` > 0 the optimizer must hold
    ``initial_lr`` (any optimizer state saved after a scheduler was attached does)."""
    step, gamma = opts.step_epochs, opts.lr_gamma
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: gamma ** (e // step),
                                             last_epoch=epoch - 1 if epoch else -1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(y: np.ndarray, num_classes: int, device) -> torch.Tensor:
    """scikit-learn's "balanced" weights ``N / (K_present * n_k)``, 0 for classes absent from
    ``y`` (they contribute no loss)."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = np.zeros(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(weights, dtype=torch.float32, device=device)


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


def precision_name(dtype: Optional[torch.dtype]) -> str:
    return "fp32" if dtype is None else f"{str(dtype).replace('torch.', '')} autocast"


def to_tensors(splits, device: torch.device) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Each split as ``(x [N, T, C] float32, y [N] int64)``: on the GPU when it fits (sliced
    there, no host copies per batch), else kept on the host (pinned) and copied per batch.
    Memory-mapped (read-only) arrays stay mapped: batches are copied out of them."""
    out = {}
    for name, split in splits.items():
        with warnings.catch_warnings():     # a read-only memmap: only ever read (x[idx] copies)
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.ascontiguousarray(split.x))
        y = torch.from_numpy(np.ascontiguousarray(split.y, dtype=np.int64))
        if device.type == "cuda":
            try:
                x, y = x.to(device), y.to(device)
            except torch.cuda.OutOfMemoryError:     # too big: batches are copied per step,
                if not isinstance(split.x, np.memmap):   # from pinned memory (a mapped file
                    x, y = x.pin_memory(), y.pin_memory()  # stays mapped: one copy per host)
        out[name] = (x, y)
    return out


class Trainer:
    """One run's model, optimizer, scheduler, scaler, RNG and progress; :meth:`train` runs its
    epochs. Built from a checkpoint (``ckpt``) it continues that run exactly."""

    def __init__(self, splits, model: str, window: int, channels: int, num_classes: int,
                 hparams: Dict[str, Any], opts: TrainOptions,
                 ckpt: Optional[Dict[str, Any]] = None, world: World = World()) -> None:
        from har.models import create_model

        self.opts = opts
        self.world = world
        self.num_classes = num_classes
        self.input_shape = [1, window, channels]
        self.device = resolve_device(opts.device)
        if world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(self.device)
        self.joined_group = distributed.start(world, self.device)
        self.dtype = amp_dtype(self.device, opts.amp)
        seed_everything(opts.seed)
        self.net = create_model(model, window, channels, num_classes, **hparams)
        if world.distributed and opts.sync_bn:
            self.net = distributed.sync_batchnorm(self.net, self.device)
        self.memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
        self.net.to(self.device, memory_format=self.memory_format)
        # DDP and compiled for the training steps only; eval, latency and state_dict use the
        # plain net (so checkpoints load in a single process)
        train_net = self.net
        if world.distributed:
            train_net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.train_net = torch.compile(train_net) if opts.compile else train_net
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=opts.lr,
                                           weight_decay=opts.weight_decay)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.shuffle = torch.Generator().manual_seed(opts.seed)
        self.state = State()
        if ckpt is not None:
            self.net.load_state_dict(ckpt["state_dict"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"], self.shuffle)
            self.state = State.of(ckpt)
        saved = (ckpt or {}).get("scheduler") or {}
        self.scheduler = make_scheduler(self.optimizer, opts,
                                        int(saved.get("last_epoch", self.state.epoch)))
        self.tensors = to_tensors(splits, self.device)
        self.has_val = "val" in self.tensors
        weight = (class_weights(np.asarray(splits["train"].y), num_classes, self.device)
                  if opts.class_weights else None)
        self.weight = weight
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        self.saved_epoch = self.state.epoch

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def save(self, run: RunDir, base: Dict[str, Any]) -> None:
        """Write last.pt (atomic): ``base`` (the self-describing part) plus the run's state;
        ``saved_epoch`` is the epoch it holds. Rank 0 alone writes."""
        s = self.state
        if not self.world.main:
            self.saved_epoch = s.epoch
            return
        save_checkpoint(run.last, {
            **base, "epoch": s.epoch, "best_val_f1_macro": s.best_val_f1_macro,
            "best_epoch": s.best_epoch, "epochs_since_best": s.since_best, "history": s.history,
            "state_dict": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rng_state(self.shuffle)})
        self.saved_epoch = s.epoch

    def train(self, run: RunDir, base: Dict[str, Any],
              on_epoch: Optional[Callable[[Dict[str, Any]], None]], progress: bool,
              log: Callable[[str], None]) -> str:
        """Epochs until ``opts.epochs`` or early stop, each recorded in the run folder (last.pt,
        best.pt, metrics.csv); returns why it stopped: ``completed`` or ``early_stop``."""
        state, opts, main = self.state, self.opts, self.world.main
        if main:
            write_metrics(run.metrics, state.history)
        try:
            while state.epoch < opts.epochs:
                row = self.epoch(state.epoch + 1, progress and main)
                self._check_finite(row, run)
                improved = state.record(row, self.has_val)
                self.save(run, base)
                if improved and main:
                    run.mark_best()
                if main:
                    write_metrics(run.metrics, state.history)
                if on_epoch is not None:
                    on_epoch(row)
                if opts.early_stop and state.since_best >= opts.early_stop:
                    log(f"note: early stop after epoch {state.epoch}: val macro F1 has not "
                        f"improved for {opts.early_stop} epochs (best "
                        f"{state.best_val_f1_macro:.4f} at epoch {state.best_epoch})")
                    return "early_stop"
        except KeyboardInterrupt:
            # last.pt is only ever replaced atomically: it holds saved_epoch, whole
            raise TrainingInterrupted(run.last, self.saved_epoch, self.saved_epoch + 1) from None
        return "completed"

    def epoch(self, epoch: int, progress: bool) -> Dict[str, Any]:
        """Train one epoch, score val, time one window; return the metrics row."""
        opts, device, net, world = self.opts, self.device, self.train_net, self.world
        distributed.maybe_fail(world, epoch)
        x, y = self.tensors["train"]
        n = y.shape[0]
        order = torch.randperm(n, generator=self.shuffle)
        batches = [order[i:i + opts.batch_size] for i in range(0, n, opts.batch_size)]
        if world.distributed:       # a final batch smaller than the ranks: skipped by all
            batches = [b for b in batches if len(b) >= world.size]
            n = sum(len(b) for b in batches)
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        with progress_bar(length=len(batches), label=f"epoch {epoch}", enabled=progress) as bar:
            for idx in batches:
                criterion, mine = self.criterion, idx
                if world.distributed:           # this rank's share of the global batch
                    mine = idx[distributed.share(len(idx), world)]
                    criterion = functools.partial(
                        distributed.batch_loss, weight=self.weight,
                        global_target=y[idx.to(y.device)].to(device), w=world)
                mine = mine.to(x.device)
                xb = x[mine].unsqueeze(1).to(device, non_blocking=True,
                                             memory_format=self.memory_format)
                yb = y[mine].to(device, non_blocking=True)
                loss = train_step(net, self.optimizer, self.scaler, criterion, xb, yb,
                                  self.dtype)
                loss_sum += loss * (len(idx) / world.size if world.distributed else len(idx))
                bar.update(1)
        self.scheduler.step()
        distributed.all_sum(loss_sum)
        train_loss = float(loss_sum) / n  # the one host sync of the epoch
        row: Dict[str, Any] = dict.fromkeys(METRICS_COLUMNS)
        row.update(epoch=epoch, train_loss=train_loss, epoch_s=time.perf_counter() - t0)
        if not math.isfinite(train_loss):
            return row
        if self.has_val:
            result = self.score("val")
            row.update(val_loss=result["loss"], val_infer_s=result["seconds"],
                       **{f"val_{k}": v for k, v in result["scores"].items()})
        if world.main:
            row["train_latency_ms"] = single_sample_latency_ms(
                self.net, self.input_shape, runs=opts.latency_runs, amp_dtype=self.dtype)
        return row

    def score(self, split: str) -> Dict[str, Any]:
        """:func:`har.scoring.score` of the current weights on ``split`` (fp32); with several
        ranks each scores its share and the logits are gathered: the same figures."""
        x, y = self.tensors[split]
        if not self.world.distributed:
            return score(self.net, x, y, device=self.device)
        t0 = time.perf_counter()
        mine = logits(self.net, x[distributed.share(x.shape[0], self.world)], device=self.device)
        gathered = distributed.gather(mine, self.world)
        return score_logits(gathered, y, time.perf_counter() - t0)

    def _check_finite(self, row: Dict[str, Any], run: RunDir) -> None:
        """HarError when the epoch's training loss is NaN/inf; last.pt still holds the last
        good epoch because it is written only after this check."""
        if math.isfinite(row["train_loss"]):
            return
        state, lr = self.state, self.opts.lr
        kept = (f"{run.last if run else 'last.pt'} keeps epoch {state.epoch}, the last good one"
                if state.epoch else "no epoch finished")
        raise HarError(f"epoch {row['epoch']}: the training loss became {row['train_loss']} "
                       f"(diverged); train again with a lower --lr than {lr:g} (e.g. --lr "
                       f"{lr / 10:g}); {kept}")
