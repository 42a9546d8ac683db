"""Training on several processes with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc-per-node N -m har train ...`` (one machine) or with ``--nnodes``,
``--rdzv-backend c10d --rdzv-endpoint HOST:PORT`` (several) starts N processes per machine and
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``; ``har train --nproc N``
does the same on one machine from Python (:func:`launch`: torch's elastic agent, no shell).
:func:`world` reads that environment; ``fit`` then trains one process of the group:

* the process group is NCCL on GPUs (one per local rank), gloo on CPUs (:func:`start`);
* every rank draws the same seeded order of the training windows; each global batch of
  ``--batch-size`` windows is cut into contiguous per-rank shares (:func:`share`, sizes differ
  by at most one), so the union of the shards is the single-process order. Each rank's loss is
  its share of the global batch's mean (:func:`batch_loss`) and DDP averages gradients, so a
  step is the single-process step on the same global batch (with ``--sync-bn`` also for
  BatchNorm's batch statistics);
* validation windows are split the same way, scored per rank in fp32 and gathered
  (:func:`gather`), so every rank computes the single-process scores and takes the same
  decisions (best epoch, early stop);
* rank 0 alone writes the run folder, prints and draws progress; checkpoints hold the unwrapped
  model, so they load in a single process and back.

A rank that dies ends the job: the elastic agent stops the others and :func:`launch` names the
failed rank; collectives time out after :data:`TIMEOUT_S` instead of hanging.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping, Optional, Sequence

from harkit.errors import HarError

#: Seconds a collective (all-reduce, gather, barrier) may wait for the other ranks.
TIMEOUT_S = 300
#: Fault injection for tests: ``HARKIT_FAULT="rank:epoch"`` makes that rank die (exit code
#: :data:`FAULT_EXIT`) at the start of that epoch.
FAULT_ENV = "HARKIT_FAULT"
FAULT_EXIT = 17


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size`` 1: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes, prints and draws progress."""
        return self.rank == 0


def world(environ: Mapping[str, str] = os.environ) -> World:
    """The :class:`World` torchrun describes in ``environ`` (a single process without it)."""
    if "WORLD_SIZE" not in environ:
        return World()
    try:
        size = int(environ["WORLD_SIZE"])
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", "0"))
        local_size = int(environ.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError:
        raise HarError("RANK/WORLD_SIZE/LOCAL_RANK are not whole numbers; start distributed "
                       "training with torchrun or 'har train --nproc N'") from None
    if not (size >= 1 and 0 <= rank < size and 0 <= local_rank < local_size):
        raise HarError(f"RANK {rank}, LOCAL_RANK {local_rank} do not fit WORLD_SIZE {size}; "
                       "start distributed training with torchrun or 'har train --nproc N'")
    return World(rank, size, local_rank, local_size)


def start(w: World, device) -> bool:
    """Join the process group (NCCL for CUDA devices, else gloo) unless this process already
    has; return whether this call joined it (the caller then leaves it, :func:`stop`)."""
    import torch.distributed as dist

    if not w.distributed or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S), **kwargs)
    return True


def stop() -> None:
    """Leave the process group (when one was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(n: int, w: World) -> slice:
    """This rank's contiguous share of ``n`` items: ``n // size`` each, the first ``n % size``
    ranks one more; the shares in rank order are the ``n`` items in order."""
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return slice(start, start + base + (w.rank < extra))


def batch_loss(logits, target, weight, global_target, w: World):
    """This rank's loss: its share of the global batch's (class-weighted) mean cross-entropy,
    times ``size`` (DDP averages gradients over the ranks, so their sum is the global mean's
    gradient). ``global_target`` holds the whole global batch's labels."""
    import torch.nn.functional as F

    total = F.cross_entropy(logits, target, weight=weight, reduction="sum")
    denom = (weight[global_target].sum() if weight is not None
             else global_target.new_tensor(global_target.numel(), dtype=logits.dtype))
    return total * (w.size / denom)


def all_sum(tensor):
    """``tensor`` summed over the ranks, in place (a no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(tensor, w: World):
    """Every rank's ``tensor [k_r, ...]`` concatenated in rank order, on every rank (the shares
    may differ in length)."""
    import torch
    import torch.distributed as dist

    if not w.distributed:
        return tensor
    sizes = [torch.zeros(1, dtype=torch.int64, device=tensor.device) for _ in range(w.size)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest,) + tuple(tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(w.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)])


def barrier(w: World) -> None:
    import torch.distributed as dist

    if w.distributed and dist.is_initialized():
        dist.barrier()


def maybe_fail(w: World, epoch: int, environ: Mapping[str, str] = os.environ) -> None:
    """Die here when :data:`FAULT_ENV` names this rank and epoch (tests of a dying rank)."""
    spec = environ.get(FAULT_ENV, "")
    if spec and spec == f"{w.rank}:{epoch}" and w.distributed:
        sys.stderr.flush()
        os._exit(FAULT_EXIT)


# --------------------------------------------------------------------------- launching
def launch(nproc: int, argv: Sequence[str], *, monitor_s: float = 0.5) -> None:
    """Run ``python -m har train ARGV`` as ``nproc`` processes on this machine under torch's
    elastic agent (the engine behind torchrun; rendezvous on a free local port, no restarts).
    Returns when all finished; HarError naming the rank that failed first when one did not,
    or :class:`WorkersRefused` when that was rank 0 refusing its input (exit code 2: it has
    printed the one-line error)."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 2:
        raise HarError(f"--nproc {nproc}: launch 2 or more processes, or leave --nproc out")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0",
                          run_id=f"har-{os.getpid()}", max_restarts=0,
                          monitor_interval=monitor_s, start_method="spawn")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we say it once
    try:
        elastic_launch(config, sys.executable)("-m", "har", "train", *argv)
    except ChildFailedError as exc:
        rank, failure = _first_failure(exc)
        if rank == 0 and failure.exitcode == 2:
            raise WorkersRefused() from None
        raise HarError(f"distributed training failed: {_failures(exc)} (the other ranks were "
                       "stopped); last.pt keeps the last completed epoch: resume with --resume"
                       ) from None


class RankLost(HarError):
    """A collective failed because another rank is gone; this rank exits quietly with code 3
    and the launcher (``har train --nproc``, or torchrun) names the rank that failed first."""

    exit_code = 3


def lost_rank(exc: BaseException, w: World) -> "RankLost | None":
    """:class:`RankLost` for a collective's failure under torchrun, else None."""
    if not w.distributed or not isinstance(exc, RuntimeError):
        return None
    return RankLost(f"rank {w.rank}: lost the other processes ({str(exc).splitlines()[0][:120]})")


class WorkersRefused(Exception):
    """Every failed rank exited with code 2: a HarError that rank 0 has already printed."""


def quiet_rank(exc: BaseException) -> bool:
    """Whether this torchrun rank leaves the one-line error ``exc`` to another: ranks other
    than 0 leave input errors to rank 0 (all ranks get the same input, so they fail alike);
    every rank leaves :class:`RankLost` to the launcher."""
    w = world()
    return w.distributed and (isinstance(exc, RankLost) or not w.main)


def _first_failure(exc):
    """``(rank, failure)`` of the rank that failed first: one that was not stopped by the
    agent (SIGTERM/SIGKILL) nor lost its peers (:class:`RankLost`), else the earliest."""
    if not exc.failures:
        return None, None
    followers = {-signal.SIGTERM, -signal.SIGKILL, RankLost.exit_code}
    return min(exc.failures.items(), key=lambda item: (
        item[1].exitcode in followers, item[1].timestamp, item[0]))


def _failures(exc) -> str:
    """``rank R ended with exit code C`` for the rank that failed first."""
    rank, failure = _first_failure(exc)
    if failure is None:
        return "a rank failed"
    code = failure.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return f"rank {rank} ended with {how}"


def threads_per_process(w: World, cores: Optional[int] = None) -> int:
    """CPU threads for each of the ``local_size`` processes on this machine: the cores shared."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    return max(1, cores // max(1, w.local_size))


# --------------------------------------------------------------------------- BatchNorm
def sync_batchnorm(net, device):
    """``net`` with every BatchNorm computing its batch statistics over all ranks' shares of
    the batch (``--sync-bn``): ``torch.nn.SyncBatchNorm`` on CUDA; on CPUs, where DDP refuses
    it, ``GlobalBatchNorm`` (:func:`_define_global_batchnorm`). Same parameters and buffers,
    so state_dicts are unchanged."""
    import torch.nn as nn

    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return _convert(net, nn)


def _convert(module, nn):
    global_bn = _global_batchnorm()
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, global_bn):
        out = global_bn(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        converted = _convert(child, nn)
        if converted is not child:
            setattr(module, name, converted)
    return module


_GLOBAL_BN = None


def _global_batchnorm():
    """The :class:`GlobalBatchNorm` class, defined on first use (torch imported lazily)."""
    global _GLOBAL_BN
    if _GLOBAL_BN is None:
        _GLOBAL_BN = _define_global_batchnorm()
    return _GLOBAL_BN


def _define_global_batchnorm():
    import torch
    import torch.distributed as dist

    class _GlobalBatchNormFn(torch.autograd.Function):
        """Batch normalization over the global batch with ATen's CPU kernels: the local
        statistics come from ``native_batch_norm``, the ranks' ``[C]`` vectors are combined by
        one all-reduce forward and one backward, and the activations are normalized and
        back-propagated by the inference-mode kernels with the global statistics.

        Backward, with N the global count, a = weight * invstd and xhat the normalized input:
        grad_x = a * g - a / N * (sum g + xhat * sum g*xhat), the sums over every rank."""

        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            c = x.shape[1]
            # An fp32 weight makes the kernel return fp32 statistics for a bf16 x.
            w = weight if weight is not None else x.new_ones(
                c, dtype=torch.promote_types(x.dtype, torch.float32))
            _, mean_r, invstd_r = torch.native_batch_norm(x, w, None, None, None, True,
                                                          0.0, eps)
            var_r = invstd_r.pow(-2) - eps
            count = x.numel() / c
            # Chan's combination: sum of counts, of count*mean, of count*(var + mean^2).
            sums = torch.cat([mean_r * count, (var_r + mean_r * mean_r) * count,
                              mean_r.new_tensor([count])])
            dist.all_reduce(sums)
            n = sums[-1]
            mean = sums[:c] / n
            var = (sums[c:2 * c] / n - mean * mean).clamp_min(0)
            out = torch.batch_norm(x, w, bias, mean, var, False, 0.0, eps, True)
            ctx.save_for_backward(x, w, mean, var)
            ctx.affine = weight is not None
            ctx.eps, ctx.n = eps, n
            ctx.mark_non_differentiable(mean, var)
            return out, mean, var, n

        @staticmethod
        def backward(ctx, grad_out, _mean, _var, _n):
            x, w, mean, var = ctx.saved_tensors
            c = x.shape[1]
            grad_out = grad_out.contiguous(memory_format=_layout(x))
            # Inference-mode backward: a * g, and the local sums of g * xhat and of g.
            grad_a, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
                grad_out, x, w, mean, var, None, None, False, ctx.eps, [True, True, True])
            sums = torch.cat([grad_b, grad_w])  # weight dtype: fp32 for a bf16 x
            dist.all_reduce(sums)
            invstd = torch.rsqrt(var + ctx.eps)
            a = w * invstd
            k = a / ctx.n
            # grad_x = a*g - k*sum_g - k*sum_gxhat*invstd*(x - mean) = a*g + x*b + d.
            b = -k * sums[c:] * invstd
            d = -k * sums[:c] - b * mean
            shape = [1, c] + [1] * (x.dim() - 2)
            grad_x = torch.addcmul(d.view(shape).to(x.dtype), x, b.view(shape).to(x.dtype))
            grad_x += grad_a
            if not ctx.affine:
                grad_w = grad_b = None
            return grad_x, grad_w, grad_b, None

    def _layout(x):
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            return torch.channels_last
        return torch.contiguous_format

    class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
        """BatchNorm whose training statistics are those of the global batch (every rank's
        share), combined over the ranks by one all-reduce of per-channel vectors forward and
        one backward (:class:`_GlobalBatchNormFn`). In eval mode a plain BatchNorm. Works with
        gloo on CPUs, where ``torch.nn.SyncBatchNorm`` does not."""

        def _check_input_dim(self, x):
            if x.dim() < 2:
                raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

        def forward(self, x):
            if not (self.training and dist.is_available() and dist.is_initialized()):
                return super().forward(x)
            out, mean, var, n = _GlobalBatchNormFn.apply(x, self.weight, self.bias, self.eps)
            if self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                              else self.momentum)
                    # n / (n - 1) without leaving the graph (no .item(): torch.compile)
                    unbiased = torch.where(n > 1, var * n / (n - 1).clamp_min(1), var)
                    self.running_mean.mul_(1 - factor).add_(mean * factor)
                    self.running_var.mul_(1 - factor).add_(unbiased * factor)
            return out

    return GlobalBatchNorm


def __getattr__(name: str):
    """``GlobalBatchNorm``, defined on first use (this module imports torch lazily)."""
    if name == "GlobalBatchNorm":
        return _global_batchnorm()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
