"""Running the folds of a cross-validation: plan, train each fold, record its test predictions.

Each fold is a ``har train`` run on the fold's data (:func:`data_prep.folds.fold_data`) in
``OUT/fold-<name>/``. After training, ``best.pt`` scores the fold's test subjects in float32
(:func:`har.scoring.score`, what ``har evaluate`` computes) and the fold writes ``fold.json``
(its row of the report) and ``test_predictions.npz`` (true and predicted labels and subjects,
for the pooled scores). A fold with both files is finished and skipped on a re-run; a fold with
only ``last.pt`` resumes from it.

With ``jobs`` > 1 the folds run in separate processes (spawned), each with its share of the
cores as torch threads (:func:`thread_plan`) unless ``threads`` is given, and on a machine with
several GPUs each process sees one of them (``CUDA_VISIBLE_DEVICES``). Per-fold results depend
only on the fold, the seed and the thread count, not on which process ran it.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from data_prep.folds import Fold, assignment_check, fold_data, plan
from har.train import distributed
from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_json, write_with

PLAN = "plan.json"
PLAN_FORMAT = "harkit.cv-plan"
SELECTIONS = ("last", "inner")


def parse_folds(value) -> Any:
    """``"loso"`` or an integer k >= 2 (``--folds``)."""
    text = str(value).strip().lower()
    if text == "loso":
        return "loso"
    try:
        k = int(text)
    except ValueError:
        raise HarError(f"--folds {value!r}: pass loso or a number of folds such as 5") from None
    if k < 2:
        raise HarError(f"--folds {k}: pass 2 or more, or loso")
    return k


def run(data, folds="loso", *, model: Optional[str] = None, out=None, select: str = "last",
        jobs: int = 1, fold: Optional[int] = None, seed: Optional[int] = None, config=None,
        hparams: Optional[Dict[str, Any]] = None, log: Optional[Callable[[str], None]] = None,
        report: bool = True, **options: Any) -> Dict[str, Any]:
    """Cross-validate ``model`` on the prepared folder ``data``; return the report (or, with
    ``report`` False or a single ``fold``, ``{"folds": [fold rows]}``). Under torchrun all
    processes train each fold together (DDP); rank 0 writes and returns, the others get ``{}``.

    ``folds``: ``"loso"`` or k. ``select``: ``last`` (score the last epoch) or ``inner`` (a
    training subject per fold validates and picks ``best.pt``). ``options`` are ``har train``
    options; ``seed`` seeds the fold plan and training. ``out`` defaults to
    ``runs/cv-<model>-<folds>``.
    """
    from data_prep.store import load_prepared

    log = log or (lambda line: None)
    folds = parse_folds(folds)
    if select not in SELECTIONS:
        raise HarError(f"--select {select!r}: choose last or inner")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise HarError(f"--jobs {jobs!r}: pass a number of processes >= 1")
    prepared = load_prepared(data)
    from har.train.options import defaults

    model = model or defaults()["model"]
    seed = 0 if seed is None else seed
    out = Path(out) if out is not None else Path("runs") / f"cv-{model}-{folds}"
    the_plan = plan(prepared, folds, seed=seed, inner=select == "inner")
    problem = assignment_check(the_plan)
    if problem:                                      # a bug, not a user mistake
        raise RuntimeError(f"fold plan: {problem}")
    chosen = the_plan
    if fold is not None:
        if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= len(the_plan):
            raise HarError(f"--fold {fold!r} is out of range: this plan has folds 1.."
                           f"{len(the_plan)} ({the_plan[0].name} ... {the_plan[-1].name})")
        chosen = [the_plan[fold - 1]]
    record = _plan_record(prepared, folds, select, seed, model, hparams, options, config,
                          the_plan)
    settings = {"data": str(Path(prepared.path).resolve()), "model": model, "config": config,
                "hparams": hparams or {}, "options": {**options, "seed": seed}}
    world = distributed.world()
    if world.distributed:                 # under torchrun: every fold is one DDP training
        if jobs != 1:
            raise HarError("--jobs: under torchrun the processes train each fold together; "
                           "drop --jobs (or run folds as separate jobs with --fold K)")
        return _run_folds_together(chosen, settings, out, record, report and fold is None,
                                   world, log)
    _write_plan(out, record)
    rows = _run_folds(chosen, settings, out, jobs, log)
    if report and fold is None:
        from har.cv.report import report as build_report

        return build_report(out)
    return {"folds": rows}


def _plan_record(prepared, folds, select, seed, model, hparams, options, config, the_plan):
    import hashlib

    digest = hashlib.sha256((Path(prepared.path) / "meta.json").read_bytes()).hexdigest()
    return {"format": PLAN_FORMAT, "format_version": 1, "harkit_version": __version__,
            "data": str(Path(prepared.path).resolve()), "data_digest": digest,
            "dataset": prepared.meta.get("dataset"),
            "subjects_are": prepared.meta.get("subjects_are", "subjects"),
            "folds": folds, "select": select, "seed": seed, "model": model,
            "hparams": hparams or {}, "options": {k: v for k, v in options.items()},
            "config": None if config is None else str(config),
            "normalization": "refitted per fold on its training subjects" if
            (prepared.meta.get("normalization") or {}).get("applied") else "none",
            "plan": [f.to_dict() for f in the_plan]}


def _write_plan(out: Path, record: Dict[str, Any]) -> None:
    """OUT/plan.json; an existing one must describe the same plan (a cluster's fold jobs)."""
    path = out / PLAN
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        same = old is not None and all(old.get(k) == record[k] for k in
                                       ("data_digest", "folds", "select", "seed", "model",
                                        "plan"))
        if not same:
            raise HarError(f"--out {out} holds another cross-validation (its plan.json differs: "
                           "data, folds, selection, seed or model); choose another --out")
        return
    if out.is_dir() and any(p.name != PLAN for p in out.iterdir()):
        raise HarError(f"--out {out} already exists and is not a har cv folder; choose another "
                       "--out")
    write_json(path, record)


def load_plan(out: Path) -> Dict[str, Any]:
    path = Path(out) / PLAN
    if not path.is_file():
        raise HarError(f"{out} has no {PLAN}: it is not a 'har cv' output folder; pass the --out "
                       "of a har cv run")
    record = json.loads(path.read_text())
    if record.get("format") != PLAN_FORMAT:
        raise HarError(f"{path} is not a har cv plan; pass the --out of a har cv run")
    return record


# --------------------------------------------------------------------------- running folds
def _run_folds(folds: List[Fold], settings, out: Path, jobs: int, log) -> List[Dict[str, Any]]:
    todo = [f for f in folds if not is_finished(out / f.name)]
    for f in folds:
        if f not in todo:
            log(f"{f.name}: finished earlier, skipped")
    if jobs == 1 or len(todo) <= 1:
        threads = settings["options"].get("threads")
        for f in todo:
            log(f"{f.name}: training on {len(f.train)} subject(s), testing {_names(f.test)}")
            run_fold(settings, f.to_dict(), str(out), threads)
            log(f"{f.name}: {_row_line(out / f.name)}")
    else:
        _parallel(todo, settings, out, jobs, log)
    return [json.loads((out / f.name / "fold.json").read_text()) for f in folds
            if is_finished(out / f.name)]


def _run_folds_together(folds: List[Fold], settings, out: Path, record, report: bool,
                        world, log) -> Dict[str, Any]:
    """The folds one after the other, each trained by all torchrun processes at once (one
    process group for the whole run); rank 0 writes the plan, the folds' files and the
    report, and the ranks meet before each fold so that all see the same finished folds."""
    import torch

    log = log if world.main else (lambda line: None)
    device = torch.device("cuda", world.local_rank) if (
        settings["options"].get("device", "auto") != "cpu" and torch.cuda.is_available()
    ) else torch.device("cpu")
    joined = distributed.start(world, device)
    try:
        if world.main:
            _write_plan(out, record)
        for f in folds:
            distributed.barrier(world)
            if is_finished(out / f.name):
                log(f"{f.name}: finished earlier, skipped")
                continue
            log(f"{f.name}: training on {len(f.train)} subject(s), testing {_names(f.test)}")
            run_fold(settings, f.to_dict(), str(out), settings["options"].get("threads"))
            if world.main:
                log(f"{f.name}: {_row_line(out / f.name)}")
        distributed.barrier(world)
    finally:
        if joined:
            distributed.stop()
    if not world.main:
        return {}
    if report:
        from har.cv.report import report as build_report

        return build_report(out)
    return {"folds": [json.loads((out / f.name / "fold.json").read_text()) for f in folds]}


def _names(subjects) -> str:
    shown = ", ".join(map(str, subjects[:6]))
    return shown + (f" (+{len(subjects) - 6})" if len(subjects) > 6 else "")


def _row_line(folder: Path) -> str:
    row = json.loads((folder / "fold.json").read_text())
    return (f"macro F1 {row['f1_macro']:.4f}, accuracy {row['accuracy']:.4f} on "
            f"{row['test_windows']} test windows ({row['epochs']} epochs, {row['seconds']:.1f} s)")


def thread_plan(folds: int, jobs: int, cores: int) -> List[int]:
    """Torch threads of each of ``folds`` folds run ``jobs`` at a time on ``cores`` cores:
    ``cores // jobs`` each, except the last round when it is not full, whose ``r`` folds share
    the cores as ``cores // r`` each (so the last fold of 3 on 2 jobs uses both cores instead
    of leaving one idle). A function of the plan only, so a fold's thread count, and with it
    its result, does not depend on timing."""
    rest = folds % jobs
    return [max(1, cores // jobs)] * (folds - rest) + [max(1, cores // max(rest, 1))] * rest


def _parallel(todo: List[Fold], settings, out: Path, jobs: int, log) -> None:
    """``jobs`` spawned processes; each fold takes its :func:`thread_plan` share of the cores
    (``--threads`` fixes it) and, with several GPUs, one GPU. A fold starts only when its
    threads are free, so the cores are never oversubscribed."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    fixed = settings["options"].get("threads")
    plan = [fixed] * len(todo) if fixed else thread_plan(len(todo), jobs, cores)
    free = max(cores, sum(plan[:jobs]))
    gpus = _gpu_count()
    queue = list(enumerate(zip(todo, plan)))
    context = get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending: Dict[Any, Tuple[Fold, int]] = {}
        while queue or pending:
            while queue and len(pending) < jobs and queue[0][1][1] <= free:
                i, (f, threads) = queue.pop(0)
                free -= threads
                gpu = str(i % gpus) if gpus > 1 else None
                log(f"{f.name}: started ({threads} thread(s)"
                    + (f", GPU {gpu}" if gpu is not None else "") + ")")
                future = pool.submit(run_fold, settings, f.to_dict(), str(out), threads, gpu)
                pending[future] = (f, threads)
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                f, threads = pending.pop(future)
                free += threads
                try:
                    future.result()
                except BaseException:
                    for other in pending:
                        other.cancel()
                    raise
                log(f"{f.name}: {_row_line(out / f.name)}")


def _gpu_count() -> int:
    """Visible CUDA devices, counted without initialising CUDA in this process."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:   # noqa: BLE001 -- no torch build with CUDA: no GPUs
        return 0


def is_finished(folder: Path) -> bool:
    return (folder / "fold.json").is_file() and (folder / "test_predictions.npz").is_file()


def run_fold(settings: Dict[str, Any], fold: Dict[str, Any], out: str,
             threads: Optional[int] = None, gpu: Optional[str] = None) -> Dict[str, Any]:
    """Train one fold into ``out/<fold name>`` (resuming from its last.pt), score its test
    subjects with best.pt, write fold.json and test_predictions.npz; return the fold's row.
    Runs in this process or in a spawned one (``gpu``: its CUDA_VISIBLE_DEVICES)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    from data_prep.store import load_prepared
    from har.train import fit

    t0 = time.perf_counter()
    f = Fold.of(fold)
    folder = Path(out) / f.name
    prepared = load_prepared(settings["data"], mmap=True)   # read once, into the fold's arrays
    data = fold_data(prepared, f)
    options = dict(settings["options"])
    if threads:
        options["threads"] = threads
    startup_s = time.perf_counter() - t0
    last = folder / "last.pt"
    lines: List[str] = []

    def log(line: str) -> None:        # train.log, opened once fit has made the run folder
        lines.append(line)
        with open(folder / "train.log", "a") as fh:
            fh.write(line + "\n")

    world = distributed.world()
    resuming = last.is_file()
    distributed.barrier(world)           # (torchrun) every rank decided before rank 0 writes
    if resuming:
        resumable = {k: v for k, v in options.items() if k in ("epochs", "threads", "device",
                                                                "amp")}
        summary = fit(data, resume=last, log=log, check_labels=False, **resumable)
    else:
        if world.main and folder.exists() and any(folder.iterdir()):
            raise HarError(f"{folder} holds files but no last.pt; remove the folder to train "
                           "this fold again")
        summary = fit(data, settings["model"], out=folder, config=settings["config"],
                      hparams=settings["hparams"] or None, log=log, check_labels=False,
                      **options)
    if not world.main:                   # rank 0 scores the fold and writes its files
        return {}
    row = _score_fold(f, folder, data, summary, time.perf_counter() - t0, startup_s)
    write_json(folder / "fold.json", row)
    return row


def _score_fold(f: Fold, folder: Path, data, summary, seconds: float, startup_s: float):
    """The fold's test predictions with best.pt (fp32, as ``har evaluate``) and its row."""
    from har.checkpoint import load_checkpoint, model_from_checkpoint
    from har.device import resolve_device
    from har.scoring import score

    ckpt = load_checkpoint(folder / "best.pt")
    device = resolve_device(ckpt["training"].get("device", "auto"))
    test = data["test"]
    result = score(model_from_checkpoint(ckpt, device), test.x, test.y, device=device)
    write_with(folder / "test_predictions.npz", lambda fh: np.savez(
        fh, y_true=np.asarray(test.y), y_pred=result["predictions"],
        subject=np.asarray(test.subject)))
    return {"fold": f.name, "index": f.index, "test_subjects": f.test, "val_subjects": f.val,
            "train_windows": len(data["train"]), "test_windows": len(test),
            **result["scores"], "loss": result["loss"], "epochs": summary["epochs"],
            "best_epoch": summary["best_epoch"], "seconds": round(seconds, 3),
            "startup_s": round(startup_s, 3)}
