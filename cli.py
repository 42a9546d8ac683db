"""The ``har`` command line: thin wiring from options to library functions.

Every command is a library function first (``data_prep.prepare``, ``data_prep.synth_pamap2``,
``data_prep.download_pamap2``, ...); this module only turns options into arguments and results
into printed tables. A user mistake (:class:`har.errors.HarError` or a click usage error) becomes
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from har import __version__
from har.errors import HarError

DATASETS = click.Choice(["pamap2"])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harkit")
def cli():
    """harkit: human activity recognition from wearable IMU time series.

    \b
    The main flow:
      har synth pamap2 raw/            # or: har download pamap2 raw/
      har prepare raw/                 # raw recordings -> prepared/pamap2
    """


# --------------------------------------------------------------------------- synth
@cli.command()
@click.argument("dataset", type=DATASETS)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed, same bytes.")
@click.option(
    "--seconds-per-activity",
    type=float,
    default=60.0,
    show_default=True,
    help="Nominal seconds of each activity per subject (varied per subject).",
)
@click.option("--subjects", default=None, help="Comma-separated subject IDs (default 101-109).")
@click.option("--optional", is_flag=True, help="Also write Optional/ with activities 9-11, 18-20.")
@click.option(
    "--full-size",
    is_flag=True,
    help="Reproduce the real Protocol folder's size (~2.9 M rows, ~1.3 GB); for benchmarks.",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def synth(dataset, out, seed, seconds_per_activity, subjects, optional, full_size, force):
    """Write synthetic recordings in the exact raw file format of DATASET to OUT.

    \b
    Example:
      har synth pamap2 demo/raw --seconds-per-activity 30 --seed 0
      har synth pamap2 bench/raw --full-size
    """
    from data_prep.synth import synth_pamap2

    report = synth_pamap2(
        out,
        seed=seed,
        seconds_per_activity=seconds_per_activity,
        subjects=_parse_int_list(subjects, "--subjects"),
        optional=optional,
        full_size=full_size,
        force=force,
        progress=True,
    )
    click.echo(f"wrote {report['files']} files, {report['rows']:,} rows, "
               f"{report['bytes'] / 1e6:.1f} MB to {out}")


# --------------------------------------------------------------------------- download
@cli.command()
@click.argument("dataset", type=DATASETS)
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--url", default=None, help="Archive URL (default: the UCI archive); for mirrors.")
@click.option("--force", is_flag=True, help="Download again even if DEST already holds the data.")
def download(dataset, dest, url, force):
    """Download and extract DATASET into DEST (leaves DEST/PAMAP2_Dataset/).

    \b
    Example:
      har download pamap2 raw/
      har prepare raw/
    """
    from data_prep.download import download_pamap2

    manifest = download_pamap2(dest, url=url, force=force, progress=True)
    click.echo(f"{manifest['dataset_dir']}  ({manifest['size']:,} bytes, sha256 "
               f"{manifest['sha256'][:12]}…)")


# --------------------------------------------------------------------------- prepare
@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Prepared folder to write [config: prepared/pamap2].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file with defaults (default: configs/pamap2.toml).")
@click.option("--sensors", default=None, help="Comma-separated subset of hand,chest,ankle.")
@click.option("--modalities", default=None, help="Comma-separated subset of acc16,acc6,gyro,mag.")
@click.option("--heart-rate/--no-heart-rate", default=None, help="Add the heart-rate channel.")
@click.option("--temperature/--no-temperature", default=None,
              help="Add one temperature channel per sensor.")
@click.option("--include-optional/--protocol-only", default=None,
              help="Also read Optional/ and add its 6 activities (18 classes).")
@click.option("--downsample", type=int, default=None,
              help="Keep every Nth row (3: 100 Hz -> 33.3 Hz) [config: 3].")
@click.option("--antialias/--no-antialias", default=None,
              help="Low-pass before downsampling (scipy.signal.decimate).")
@click.option("--window", type=int, default=None, help="Window length in steps [config: 171].")
@click.option("--overlap", type=float, default=None,
              help="Window overlap in [0, 1); stride = int(window * (1 - overlap)) [config: 0.5].")
@click.option("--val-subjects", default=None, help="Comma-separated IDs or 'none' [config: 105].")
@click.option("--test-subjects", default=None, help="Comma-separated IDs or 'none' [config: 106].")
@click.option("--normalize/--no-normalize", default=None,
              help="z-score each channel with train-split statistics [config: on].")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Parse cache (default: $HARKIT_CACHE or ~/.cache/harkit).")
@click.option("--no-cache", is_flag=True, help="Parse again and do not write the cache.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def prepare(path, out, config_file, force, cache_dir, no_cache, **options):
    """Turn raw PAMAP2 recordings at PATH into a prepared folder of windows.

    PATH may be the Protocol folder, the PAMAP2_Dataset folder, any folder above it, or the
    downloaded .zip. Options override the config file; every choice lands in meta.json.

    \b
    Example:
      har synth pamap2 demo/raw
      har prepare demo/raw --out demo/prepared --window 171 --overlap 0.5
      har prepare demo/raw --out demo/p2 --sensors hand,ankle --modalities acc16,gyro --force
    """
    from data_prep import prepare as prepare_fn
    from data_prep.config import load_prepare_config
    from data_prep.report import format_class_table

    overrides = {k: v for k, v in options.items() if v is not None}
    for key in ("sensors", "modalities"):
        if key in overrides:
            overrides[key] = [s.strip() for s in overrides[key].split(",") if s.strip()]
    for key in ("val_subjects", "test_subjects"):
        if key in overrides:
            overrides[key] = _parse_subjects(overrides[key], f"--{key.replace('_', '-')}")
    if out is not None:
        overrides["out"] = str(out)
    config = load_prepare_config(config_file, overrides)
    meta = prepare_fn(path, config, force=force, cache_dir=cache_dir, use_cache=not no_cache,
                      progress=True)
    click.echo(format_class_table(meta))
    click.echo(f"wrote {config.out}  ({meta['timing']['total_s']:.2f} s)")


# --------------------------------------------------------------------------- helpers
def _parse_int_list(text, option):
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise HarError(f"{option}: expected comma-separated integers, got {text!r}") from None


def _parse_subjects(text, option):
    if text.strip().lower() == "none":
        return []
    return _parse_int_list(text, option)


def main(argv=None):
    """Console-script entry point: runs the group, turns user mistakes into one line + exit 2."""
    prog = "har"
    try:
        cli.main(args=argv, prog_name=prog, standalone_mode=False)
    except HarError as exc:
        click.echo(f"har: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("har: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        where = f"har {exc.ctx.info_name}: " if getattr(exc, "ctx", None) and exc.ctx.parent else "har: "
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
