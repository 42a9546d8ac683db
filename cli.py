"""The ``har`` command line: thin wiring from options to library functions.

Every command is a library function first (``data_prep.prepare``, ``data_prep.synth_pamap2``,
``data_prep.download_pamap2``, ...); this module only turns options into arguments and results
into printed tables. A user mistake (:class:`harkit.errors.HarError` or a click usage error) becomes
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from har.formats import CHOICES as EXPORT_CHOICES
from harkit import __version__
from harkit.errors import HarError

#: The commands in the order of the main flow (``har --help`` lists them so).
FLOW = ("synth", "download", "datasets", "prepare", "train", "cv", "evaluate", "predict", "plot",
        "bench", "export", "models")


class _FlowGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(self.commands, key=lambda c: FLOW.index(c) if c in FLOW else len(FLOW))


@click.group(cls=_FlowGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harkit")
def cli():
    """harkit: human activity recognition from wearable IMU time series.

    \b
    The main flow:
      har synth pamap2 raw/            # or: har download pamap2 raw/
      har datasets                     # the dataset adapters (PAMAP2, your CSV/Parquet, UEA .ts)
      har prepare raw/                 # raw recordings -> prepared/pamap2
      har train --model resnet         # -> runs/resnet-<time>/best.pt, metrics.csv, curves.png
      har cv prepared/pamap2 --folds loso   # subject-wise cross-validation: mean ± std, pooled
      har evaluate runs/<run>/best.pt  # per class, per subject, confusion matrix (+ PNG)
      har predict runs/<run>/best.pt raw/Protocol/subject106.dat --out timeline.csv
      har plot runs/<run>              # redraw curves.png from metrics.csv
      har bench --checkpoint runs/<run>/best.pt   # latency and throughput per backend
      har export runs/<run>/best.pt    # ONNX or TorchScript for deployment
      har models                       # the models, with parameters and MACs
    """


# --------------------------------------------------------------------------- option types
class CommaList(click.ParamType):
    """A comma-separated option value as a list (``--sensors hand,ankle``); ``none`` (where
    allowed) is the empty list. A bad item is a usage error naming the option."""

    def __init__(self, item=str, allow_none: bool = False) -> None:
        self.item, self.allow_none = item, allow_none
        self.name = f"{'integer ' if item is int else ''}list"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        text = str(value).strip()
        if self.allow_none and text.lower() == "none":
            return []
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return [self.item(t) for t in items]
        except ValueError:
            kind = "integers" if self.item is int else "values"
            self.fail(f"expected comma-separated {kind}"
                      + (" or 'none'" if self.allow_none else "") + f", got {text!r}", param, ctx)


INT_LIST = CommaList(int)
NAMES = CommaList(str)
SUBJECTS = CommaList(int, allow_none=True)


# --------------------------------------------------------------------------- synth
def _synth_choice() -> click.Choice:
    from data_prep.synth import WRITERS

    return click.Choice(list(WRITERS))


@cli.command()
@click.argument("dataset", type=_synth_choice())
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed, same bytes.")
@click.option("--seconds-per-activity", type=float, default=None,
              help="Nominal seconds of each activity per subject (varied per subject) "
                   "[default: the dataset's own, e.g. 60 for pamap2, 20 for wisdm].")
@click.option("--subjects", type=INT_LIST, default=None,
              help="Comma-separated subject IDs [default: all of the dataset's; csv: PAMAP2's "
                   "101-106, written as P01-P06].")
@click.option("--optional", is_flag=True,
              help="pamap2: also write Optional/ with activities 9-11, 18-20.")
@click.option("--full-size", is_flag=True,
              help="pamap2, wisdm: the real data's size (PAMAP2 Protocol ~2.9 M rows, 1.3 GB; "
                   "WISDM ~1.1 M records); for benchmarks.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def synth(dataset, out, seed, seconds_per_activity, subjects, optional, full_size, force):
    """Write synthetic recordings in the exact raw file format of DATASET to OUT.

    pamap2: Protocol/subjectNNN.dat files. csv: a wrist-IMU study of your own, one CSV file
    per participant (time, acc_x..gyro_z, activity, participant at 50 Hz). uci_har, wisdm,
    mhealth: their archives' layouts and text formats (WISDM's flaws included). All share one
    body model, so training on them means something; scores on synthetic data are not
    published scores.

    \b
    Example:
      har synth pamap2 demo/raw --seconds-per-activity 30 --seed 0
      har synth pamap2 bench/raw --full-size
      har synth csv study/ --seed 0
      har synth wisdm raw/wisdm && har prepare raw/wisdm
    """
    from data_prep.synth import synth as synth_fn

    report = synth_fn(dataset, out, seed=seed, seconds_per_activity=seconds_per_activity,
                      subjects=subjects, optional=optional, full_size=full_size, force=force,
                      progress=True)
    click.echo(f"wrote {report['files']} files, {report['rows']:,} rows, "
               f"{report['bytes'] / 1e6:.1f} MB to {out}")


# --------------------------------------------------------------------------- download
def _download_choice() -> click.Choice:
    from data_prep.datasets import list_datasets

    return click.Choice([d.name for d in list_datasets() if d.archive is not None])


@cli.command()
@click.argument("dataset", type=_download_choice())
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--url", default=None,
              help="Archive URL or local file (default: the dataset's official archive); for "
                   "mirrors.")
@click.option("--force", is_flag=True, help="Download again even if DEST already holds the data.")
def download(dataset, dest, url, force):
    """Download and extract DATASET's official archive into DEST.

    Leaves DEST/PAMAP2_Dataset/, DEST/UCI HAR Dataset/, DEST/WISDM_ar_v1.1/ or
    DEST/MHEALTHDATASET/, the archive, and DEST/manifest.json (url, size, sha256).

    \b
    Example:
      har download pamap2 raw/pamap2
      har prepare raw/pamap2
      har download wisdm raw/wisdm --url https://mirror.example.org/WISDM_ar_latest.tar.gz
    """
    from data_prep.download import download as download_fn

    manifest = download_fn(dataset, dest, url=url, force=force, progress=True)
    click.echo(f"{manifest['dataset_dir']}  ({manifest['size']:,} bytes, sha256 "
               f"{manifest['sha256'][:12]}…)")


# --------------------------------------------------------------------------- prepare
def _subject(text: str):
    """A subject as the data writes it: a whole number (105) or a name (P01)."""
    return int(text) if text.lstrip("+-").isdigit() else text


SUBJECT_NAMES = CommaList(_subject, allow_none=True)


class _Fraction(click.ParamType):
    """A number, or ``none`` for 0 (an option that can be switched off)."""

    name = "fraction"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        if str(value).strip().lower() == "none":
            return 0.0
        try:
            return float(value)
        except ValueError:
            self.fail(f"expected a number or 'none', got {value!r}", param, ctx)


FRACTION = _Fraction()


def prepare_options(command):
    """Every adapter's prepare options (the union; docs say which dataset each is for), each
    from its dataclass field: type, help, and ``--x/--no-x`` for flags."""
    import typing
    from dataclasses import fields

    from data_prep.datasets import list_datasets

    specs = {}
    for adapter in list_datasets():
        hints = typing.get_type_hints(adapter.options)
        for f in fields(adapter.options):
            if f.name in ("dataset", "out"):
                continue
            spec = specs.setdefault(f.name, {"field": f, "kind": hints[f.name], "for": []})
            spec["for"].append(adapter.name)
    every = len(list_datasets())
    for name, spec in reversed(list(specs.items())):
        f, kind = spec["field"], spec["kind"]
        flag = f"--{name.replace('_', '-')}"
        scope = "" if len(spec["for"]) == every else f" ({', '.join(spec['for'])})"
        help_text = f.metadata["help"] + scope
        if kind is bool:
            off = f"--{f.metadata.get('off', 'no-' + name.replace('_', '-'))}"
            decorator = click.option(f"{flag}/{off}", name, default=None, help=help_text)
        else:
            if "choices" in f.metadata:
                ptype = click.Choice(f.metadata["choices"])
            elif typing.get_origin(kind) in (list, typing.List):
                ptype = SUBJECT_NAMES if name.endswith("subjects") else NAMES
            elif f.metadata.get("allow_none"):
                ptype = FRACTION
            else:
                ptype = {int: click.INT, float: click.FLOAT}.get(kind, click.STRING)
            decorator = click.option(flag, name, type=ptype, default=None, help=help_text)
        command = decorator(command)
    return command


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, metavar="NAME",
              help="Which adapter reads PATH (see 'har datasets') [default: detected].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Prepared folder to write [default: prepared/<dataset>].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file whose [prepare] table overrides configs/<dataset>.toml (and may "
                   "name the dataset).")
@prepare_options
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Parse cache (default: $HARKIT_CACHE or ~/.cache/harkit).")
@click.option("--no-cache", is_flag=True, help="Parse again and do not write the cache.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def prepare(path, dataset, out, config_file, force, cache_dir, no_cache, **options):
    """Turn the raw data at PATH into a prepared folder of windows.

    The dataset is detected from what PATH holds (PAMAP2 folder or .zip, UEA .ts files, CSV/TSV/
    Parquet recordings), or named with --dataset. Defaults come from configs/<dataset>.toml;
    --config FILE overrides them, options override both; every choice lands in meta.json.

    \b
    Example:
      har synth pamap2 demo/raw
      har prepare demo/raw --out demo/prepared --window 171 --overlap 0.5
      har prepare demo/raw --out demo/p2 --sensors hand,ankle --modalities acc16,gyro --force
      har prepare study/ --dataset csv --label-col activity --subject-col participant \\
          --time-col t --window 100 --val-subjects P02 --test-subjects P03
      har prepare BasicMotions/ --length pad --val-fraction 0.2
    """
    from data_prep import prepare as prepare_fn
    from data_prep.config import config_dataset, load_prepare_config
    from data_prep.datasets import detect, get_dataset
    from data_prep.report import format_class_table

    name = dataset or config_dataset(config_file)
    name = get_dataset(name).name if name else detect(path).name
    overrides = {k: v for k, v in options.items() if v is not None}
    if out is not None:
        overrides["out"] = str(out)
    config = load_prepare_config(config_file, overrides, name)
    meta = prepare_fn(path, config, force=force, cache_dir=cache_dir, use_cache=not no_cache,
                      progress=True)
    click.echo(format_class_table(meta))
    click.echo(f"wrote {config.out}  ({meta['dataset']}, {meta['timing']['total_s']:.2f} s)")


# --------------------------------------------------------------------------- datasets
@cli.command()
def datasets():
    """List the dataset adapters: rate, channels, classes and the layout each expects.

    \b
    Example:
      har datasets
      har prepare raw/ --dataset pamap2
    """
    from data_prep.datasets import list_datasets
    from data_prep.report import format_datasets

    click.echo(format_datasets(list_datasets()))


# --------------------------------------------------------------------------- train
class _WithTrainDefaults(click.Command):
    """A command whose option defaults (and ``--help``) come from ``configs/train.toml``."""

    def make_context(self, info_name, args, parent=None, **extra):
        from har.train.options import defaults

        extra.setdefault("default_map", defaults())
        return super().make_context(info_name, args, parent=parent, **extra)


def train_options(command):
    """Every :class:`har.train.options.TrainOptions` field as an option of ``command``, with
    the field's help text; defaults are shown from configs/train.toml (``_WithTrainDefaults``)."""
    import typing
    from dataclasses import fields

    from har.train.options import TrainOptions

    hints = typing.get_type_hints(TrainOptions)
    for f in reversed(fields(TrainOptions)):
        flag, kind = f"--{f.name.replace('_', '-')}", hints[f.name]
        if kind in (bool, typing.Optional[bool]):
            decorator = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name,
                                     default=None, help=f.metadata["help"],
                                     show_default=True if kind is bool else "auto")
        else:
            ptype = (click.Choice(f.metadata["choices"]) if "choices" in f.metadata
                     else {int: click.INT, float: click.FLOAT}.get(kind, click.STRING))
            decorator = click.option(flag, f.name, type=ptype, default=None, show_default=True,
                                     help=f.metadata["help"])
        command = decorator(command)
    return command


def forwarded_args(ctx: click.Context, skip=()) -> list:
    """The command line the user gave ``ctx``'s command (options and arguments set on the
    command line or by environment), rebuilt, without the parameters in ``skip``."""
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    args = []
    for param in ctx.command.params:
        if param.name in skip or ctx.get_parameter_source(param.name) not in given:
            continue
        value = ctx.params[param.name]
        if not isinstance(param, click.Option):
            args.append(str(value))
        elif param.is_flag:
            chosen = param.opts if value else param.secondary_opts
            args += chosen[:1]
        else:
            args += [param.opts[0], str(value)]
    return args


def explicit_options(ctx: click.Context, options: dict) -> dict:
    """The options the user gave (command line or environment), not the shown defaults."""
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {k: v for k, v in options.items() if ctx.get_parameter_source(k) in given}


@cli.command(cls=_WithTrainDefaults)
@click.option("--data", type=click.Path(path_type=Path), default=None, show_default=True,
              help="Prepared folder from 'har prepare'.")
@click.option("--model", default=None, show_default=True,
              help="resnet, cnn or deepconvlstm (see 'har models').")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder [default: runs/<model>-<UTC time>; with --resume: its folder].")
@click.option("--resume", type=click.Path(path_type=Path), default=None, metavar="CHECKPOINT",
              help="Continue a run from its last.pt (or best.pt), same curve.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file whose [train] and [model] tables override the defaults.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes on this machine (DistributedDataParallel under torch's elastic "
                   "agent, as torchrun): one per GPU, or sharing the CPU cores.")
@train_options
@click.pass_context
def train(ctx, data, model, out, resume, config_file, nproc, **options):
    """Train a model on a prepared folder; one row of val scores per epoch.

    Writes best.pt (best val macro F1), last.pt, metrics.csv, config.json, curves.png and
    summary.json (with the test split's scores) to the run folder. The defaults shown are
    configs/train.toml's; --config FILE overrides them, and options override both.
    --batch-size is the global batch also with several processes (--nproc N, or torchrun
    --nproc-per-node N -m har train ...).

    \b
    Example:
      har train --data demo/prepared --model resnet --epochs 2 --out runs/demo
      har train --resume runs/demo/last.pt --epochs 4
      har train --data demo/prepared --model cnn --lr 1e-3 --early-stop 10
      har train --data demo/prepared --epochs 2 --nproc 2 --out runs/ddp
    """
    from har.train import EPOCH_HEADER, TrainingInterrupted, fit, format_epoch_row

    if nproc > 1:
        from har.train.distributed import launch, world

        if world().distributed:
            raise HarError("--nproc: this process is already one of a torchrun group; drop "
                           "--nproc (torchrun's --nproc-per-node sets the processes)")
        from har.train import prepare_run
        from har.train.distributed import WorkersRefused

        checked = explicit_options(ctx, {"data": data, "model": model, **options})
        prepare_run(checked.pop("data", None), checked.pop("model", None), resume=resume,
                    config=config_file, mmap=True, **checked)   # input errors: said here, once
        try:
            launch(nproc, forwarded_args(ctx, skip=("nproc",)))
        except WorkersRefused:
            sys.exit(2)                          # rank 0 printed the one-line error
        return
    given = explicit_options(ctx, {"data": data, "model": model, **options})
    rows_shown = []

    def on_epoch(row):
        if not rows_shown:
            click.echo(EPOCH_HEADER)
        rows_shown.append(row["epoch"])
        click.echo(format_epoch_row(row))
    try:
        summary = fit(given.pop("data", None), given.pop("model", None), out=out, resume=resume,
                      config=config_file, log=click.echo, on_epoch=on_epoch, progress=True,
                      **given)
    except TrainingInterrupted as exc:
        click.echo(f"har: interrupted in epoch {exc.interrupted_epoch}; {exc.checkpoint} holds "
                   f"epoch {exc.epoch}; resume with: har train --resume {exc.checkpoint}",
                   err=True)
        sys.exit(130)
    if summary:                                  # (empty on ranks other than 0)
        click.echo(result_line(summary))


def result_line(summary: dict) -> str:
    """``best epoch 2, val macro F1 0.95, test macro F1 0.98 (accuracy 0.98), train latency
    4.39 ms -> run/best.pt``."""
    best, test = summary["best_val"], summary["test"]
    parts = [f"best epoch {summary['best_epoch']}"]
    if best:
        parts.append(f"val macro F1 {best['f1_macro']:.4f}")
    if test:
        parts.append(f"test macro F1 {test['f1_macro']:.4f} (accuracy {test['accuracy']:.4f})")
    if summary["train_latency_ms"] is not None:
        parts.append(f"train latency {summary['train_latency_ms']:.2f} ms")
    return f"{', '.join(parts)} -> {summary['checkpoint']}"


# --------------------------------------------------------------------------- cv
@cli.command(cls=_WithTrainDefaults)
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--folds", default="loso", show_default=True,
              help="loso (one fold per subject) or K (K folds of whole subjects, balanced by "
                   "windows; of cases, stratified by class, for UEA data).")
@click.option("--select", type=click.Choice(["last", "inner"]), default="last",
              show_default=True,
              help="last: score the last epoch; inner: one training subject per fold validates "
                   "and picks best.pt.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Folds trained at once, in separate processes (CPU threads split between "
                   "them; one GPU each when there are several).")
@click.option("--fold", type=int, default=None, metavar="K",
              help="Train only fold K (1-based; e.g. one job of a SLURM array), no report.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              metavar="OUT", help="(Re)build the report of OUT from its finished folds.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: runs/cv-<model>-<folds>].")
@click.option("--model", default=None, show_default=True,
              help="resnet, cnn or deepconvlstm (see 'har models').")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file whose [train] and [model] tables override the defaults.")
@train_options
@click.pass_context
def cv(ctx, data, folds, select, jobs, fold, report_dir, out, model, config_file, **options):
    """Cross-validate a model on DATA (a prepared folder) by subject: LOSO or K folds.

    Every window of every split takes part, grouped by subject; each fold refits the
    normalization on its training subjects only and is a normal run folder OUT/fold-<name>/
    (finished folds are skipped, interrupted ones resume). Prints a table per fold and the mean
    ± std and pooled scores; writes OUT/cv.csv, summary.json, confusion_pooled.png, folds.png.

    \b
    Example:
      har cv prepared/pamap2 --model resnet --folds loso --epochs 30
      har cv prepared/wisdm --model cnn --folds 5 --seed 0 --jobs 2
      har cv prepared/pamap2 --folds loso --fold 3 --out runs/cv1   # one fold (a cluster job)
      har cv --report runs/cv1                                       # the report of the folds
    """
    from har.cv.report import format_table, result_line
    from har.cv.report import report as build_report
    from har.cv.runner import run as run_cv

    if ctx.get_parameter_source("data") != click.core.ParameterSource.COMMANDLINE:
        data = None                                    # configs/train.toml's data: not here
    if report_dir is not None:
        if data is not None:
            raise HarError("--report OUT rebuilds a report; drop DATA (or drop --report to run "
                           "folds)")
        summary = build_report(report_dir)
    else:
        if data is None:
            raise click.UsageError("pass DATA (a prepared folder), or --report OUT")
        given = explicit_options(ctx, options)
        summary = run_cv(data, folds, model=model, out=out, select=select, jobs=jobs, fold=fold,
                         config=config_file, log=click.echo, **given)
        if fold is not None or not summary:       # (torchrun: empty on ranks other than 0)
            return
    click.echo(format_table(summary))
    click.echo(result_line(summary))
    click.echo(f"wrote {summary['out']}/cv.csv, summary.json, confusion_pooled.png, folds.png")


# --------------------------------------------------------------------------- models
@cli.command()
@click.option("--window", type=int, default=171, show_default=True, help="Window length T (steps).")
@click.option("--channels", type=int, default=36, show_default=True, help="Sensor channels C.")
@click.option("--classes", type=int, default=12, show_default=True, help="Number of classes.")
def models(window, channels, classes):
    """List the models with parameters and MACs per window [1, 1, WINDOW, CHANNELS].

    \b
    Example:
      har models
      har models --window 128 --channels 18 --classes 12
    """
    from har.models import describe_models

    rows = describe_models(window, channels, classes)
    click.echo(f"{'model':<14}  {'parameters':>11}  {'MACs/window':>13}  description")
    for row in rows:
        if row["parameters"] is None:
            click.echo(f"{row['name']:<14}  {'-':>11}  {'-':>13}  {row.get('error', '')}")
            continue
        click.echo(f"{row['name']:<14}  {row['parameters']:>11,}  {row['macs']:>13,}  "
                   f"{row['description']}")
    click.echo(f"input [1, 1, {window}, {channels}] -> {classes} classes")


# --------------------------------------------------------------------------- evaluate
@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Prepared folder [default: the one CHECKPOINT was trained on].")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="Which split of the prepared folder to score.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), default=None,
              help="Also write every figure to this JSON file (schema: docs/FORMAT.md).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for confusion_<split>.png [default: CHECKPOINT's folder].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs (scores are fp32 on any device).")
def evaluate(checkpoint, data, split, json_file, out, device):
    """Score CHECKPOINT on a split: per class, per subject, confusion matrix (printed and PNG).

    \b
    Example:
      har evaluate runs/demo/best.pt
      har evaluate runs/demo/best.pt --split val --json runs/demo/val.json --out figures/
    """
    from har.evaluate import evaluate as evaluate_checkpoint
    from har.evaluate import format_report
    from har.plots import plot_confusion
    from harkit.files import write_json

    report = evaluate_checkpoint(checkpoint, data, split, device=device)
    cm = report["confusion_matrix"]
    png = plot_confusion(cm["counts"], cm["classes"],
                         (out or checkpoint.parent) / f"confusion_{split}.png",
                         title=f"{checkpoint.name}, {split} split: macro F1 "
                               f"{report['overall']['f1_macro']:.3f}")
    report["confusion_png"] = str(png)
    click.echo(format_report(report))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_file, report)
    click.echo(f"\nwrote {png}" + (f" and {json_file}" if json_file is not None else ""))


# --------------------------------------------------------------------------- plot
@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
def plot(run):
    """Redraw RUN/curves.png (loss and val macro F1 per epoch) from RUN/metrics.csv.

    \b
    Example:
      har plot runs/demo
    """
    from har.plots import plot_curves

    click.echo(f"wrote {plot_curves(run.parent if run.is_file() else run)}")


# --------------------------------------------------------------------------- predict
@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("recording", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--hop", type=int, default=None,
              help="Steps between window starts [default: the training stride].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Timeline CSV: start_s,end_s,activity,probability (+ true_activity).")
@click.option("--plot", "plot_file", type=click.Path(path_type=Path), default=None,
              help="Timeline PNG, true vs predicted activity.")
@click.option("--follow", is_flag=True,
              help="Stream: read rows as they arrive (RECORDING '-' is stdin, a file is "
                   "followed as it grows) and print one prediction per hop.")
@click.option("--idle-timeout", type=float, default=None, metavar="S",
              help="With --follow FILE: stop once the file has not grown for S seconds "
                   "[default: run until Ctrl-C].")
@click.option("--by-label", is_flag=True,
              help="Restart windows at every change of the activity column, as 'har prepare' "
                   "cuts training windows (scores then equal 'har evaluate' on that subject).")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch [default: one per core; 1 is fastest for streaming].")
def predict(checkpoint, recording, hop, out, plot_file, follow, idle_timeout, by_label, threads):
    """Predict activities in a raw PAMAP2 RECORDING (.dat file, folder, or '-' for stdin).

    The rows go through exactly the preprocessing stored in CHECKPOINT. Accuracy and macro F1
    are printed when the recording has labels (windows of one trained activity; docs/FORMAT.md).

    \b
    Example:
      har predict runs/demo/best.pt demo/raw/Protocol/subject106.dat --out t.csv --plot t.png
      cat demo/raw/Protocol/subject106.dat | har predict runs/demo/best.pt - --threads 1
      har predict runs/demo/best.pt live.dat --follow --idle-timeout 10
    """
    from har.plots import plot_timeline
    from har.predict import (
        Predictor,
        format_summary,
        predict_path,
        summarize,
        torch_threads,
        write_timeline_csv,
    )
    from har.stream import PREDICTION_HEADER, Stream, format_prediction, read_chunks
    from harkit.files import output_file

    streaming = follow or str(recording) == "-"
    if idle_timeout is not None and not (follow and str(recording) != "-"):
        raise HarError("--idle-timeout applies to --follow FILE only; drop it or add --follow")
    for path, option in ((out, "--out"), (plot_file, "--plot")):
        if path is not None:
            output_file(path, option)          # refused before any work when a folder
    with torch_threads(threads):
        predictor = Predictor.load(checkpoint, hop=hop, by_label=by_label)
        if not streaming:
            timelines = predict_path(predictor, recording)
        else:
            source = None if str(recording) == "-" else recording
            stream = Stream(predictor, read_chunks(source, follow, idle_timeout),
                            name="stdin" if source is None else str(recording))
            try:
                for i, prediction in enumerate(stream):
                    if i == 0:
                        click.echo(PREDICTION_HEADER)
                    click.echo(format_prediction(prediction, predictor, stream.label_names))
            except KeyboardInterrupt:
                click.echo("har: stopped", err=True)
            timelines = [stream.timeline()]
            if not len(timelines[0]):
                raise HarError(timelines[0].note)
    click.echo(format_summary(summarize(timelines, predictor)))
    if out is not None:
        write_timeline_csv(out, timelines, predictor)
    if plot_file is not None:
        plot_timeline(timelines, predictor.classes, predictor.hop_s, plot_file)
    written = [str(p) for p in (out, plot_file) if p is not None]
    if written:
        click.echo(f"wrote {' and '.join(written)}")


# --------------------------------------------------------------------------- bench
@cli.command()
@click.option("--model", default=None, help="Model with random weights (see 'har models') "
              "[default: resnet].")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="best.pt/last.pt from 'har train': trained weights and input shape.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Prepared folder: real windows for timing, int8 calibration and agreement.")
@click.option("--window", type=int, default=None, help="Window steps T with --model [171].")
@click.option("--channels", type=int, default=None, help="Sensor channels C with --model [36].")
@click.option("--classes", type=int, default=None, help="Classes with --model [12].")
@click.option("--backend", default="all", show_default=True,
              help="eager, optimized, bf16, onnx, int8, cuda, cuda-fp16, a comma-separated list, "
                   "or all (skips those this machine cannot run).")
@click.option("--batch-sizes", type=INT_LIST, default="1,32,256", show_default=True,
              help="Comma-separated batch sizes for throughput (windows/s).")
@click.option("--runs", type=int, default=200, show_default=True,
              help="Timed single-window runs per backend.")
@click.option("--warmup", type=int, default=10, show_default=True,
              help="Untimed runs per backend first.")
@click.option("--threads", type=int, default=None,
              help="CPU threads for torch and ONNX Runtime [default: one per core].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
              show_default=True, help="Where eager, optimized and bf16 run.")
@click.option("--compile/--no-compile", "compile_", default=True, show_default=True,
              help="Let optimized and bf16 use torch.compile (a few seconds per batch size; "
                   "frozen TorchScript when off or when this machine cannot compile).")
@click.option("--json", "json_file", type=click.Path(path_type=Path), default=None,
              help="Also write the figures as JSON (docs/FORMAT.md).")
def bench(model, checkpoint, data, window, channels, classes, backend, batch_sizes, runs, warmup,
          threads, device, compile_, json_file):
    """Time single-window latency and throughput of a model across inference backends.

    Per backend: p50/p90/p99 ms for one window, windows/s per batch size, GFLOP/s, peak
    memory, the real-time headroom and, with --data, top-1 agreement and macro F1 change vs
    fp32 eager. Ends with the backend to deploy on this machine: the fastest that keeps
    >= 99.5 % agreement ('har export --format auto' writes it).

    \b
    Example:
      har bench --model resnet --window 171 --channels 36 --classes 12
      har bench --checkpoint runs/demo/best.pt --data demo/prepared --json bench.json
      har bench --checkpoint runs/demo/best.pt --backend bf16,int8 --threads 2 --runs 500
    """
    from har.bench import format_table, run
    from harkit.files import write_json

    log = None
    if sys.stderr.isatty():
        log = lambda line: click.echo(f"har bench: {line}", err=True)  # noqa: E731
    result = run(model, checkpoint=checkpoint, data=data, window=window, channels=channels,
                 classes=classes, backend=backend,
                 batch_sizes=batch_sizes, runs=runs,
                 warmup=warmup, threads=threads, device=device, compile=compile_, log=log)
    click.echo(format_table(result))
    if json_file is not None:
        write_json(json_file, result)
        click.echo(f"wrote {json_file}")


# --------------------------------------------------------------------------- export
@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(EXPORT_CHOICES),
              default="onnx", show_default=True,
              help="onnx / torchscript: fp32; onnx-int8: static int8 calibrated on --data "
                   "(8-bit weights on a CPU with VNNI, 7-bit without, as that CPU's kernels "
                   "need: export on the CPU class you deploy to); "
                   "torchscript-bf16: bfloat16 (fast on AMX / AVX-512 BF16 CPUs); auto: the "
                   "backend 'har bench' recommends on this machine (1-2 minutes of timing).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write [default: beside CHECKPOINT, .onnx, .torchscript.pt, "
                   ".int8.onnx or .bf16.torchscript.pt].")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Prepared folder for int8 calibration and the agreement check of reduced "
                   "precisions [default: the checkpoint's training data].")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def export(checkpoint, fmt, out, data, force):
    """Export CHECKPOINT for deployment, with its classes, channels and normalization inside.

    fp32 files are checked against the PyTorch model on sample windows, reduced precisions
    by top-1 agreement (>= 99.5 %) on real val windows, before anything is written.

    \b
    Example:
      har export runs/demo/best.pt --format onnx --out resnet.onnx
      har export runs/demo/best.pt --format torchscript --out resnet.torchscript.pt
      har export runs/demo/best.pt --format auto --data demo/prepared
    """
    from har.export import export as export_fn

    report = export_fn(checkpoint, fmt, out, force=force, data=data,
                       log=lambda line: click.echo(line, err=True))
    rec = report["recommended"]
    if rec:
        click.echo(f"auto: {rec['backend']} -> --format {report['format']} ({rec['why']})")
    if "agreement" in report:
        a = report["agreement"]
        check = (f"top-1 agreement with fp32 {a['agreement_top1']:.2f} %, macro F1 change "
                 f"{a['macro_f1_change']:+.4f} on {a['windows']} {a['split']} windows")
    else:
        check = f"max |logit difference| vs PyTorch {report['max_abs_diff']:.2g} on sample windows"
    click.echo(f"wrote {report['path']} ({report['format']}, {report['bytes'] / 1e6:.1f} MB); "
               f"{check}")


def main(argv=None):
    """Console-script entry point: runs the group, turns user mistakes into one line + exit 2."""
    prog = "har"
    try:
        cli.main(args=argv, prog_name=prog, standalone_mode=False)
    except HarError as exc:
        from har.train.distributed import quiet_rank

        if not quiet_rank(exc):                # torchrun: one rank (or the launcher) says it
            click.echo(f"har: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("har: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"har {ctx.info_name}: " if ctx and ctx.parent else "har: "
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"{where}error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("har: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
