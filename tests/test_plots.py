"""``har.plots`` and `har plot`: each figure is a valid PNG of the documented size in pixels.
Uses the session fixture ``trained`` of conftest.py for a real run folder and checkpoint."""

from __future__ import annotations

import configparser
import csv
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from har import plots
from har.predict import Predictor, Timeline, predict_path, torch_threads
from harkit.errors import HarError
from tests.conftest import one_error_line, png_size


def test_curves_png_from_metrics_csv(trained, tmp_path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(trained.run, run)
    (run / "curves.png").unlink(missing_ok=True)
    assert plots.plot_curves(run) == run / "curves.png"
    assert png_size(run / "curves.png") == (1000, 400)

    (run / "curves.png").unlink()
    code, out, err = run_cli("plot", run)
    assert code == 0, err
    assert out.strip() == f"wrote {run / 'curves.png'}"
    assert png_size(run / "curves.png") == (1000, 400)


def test_curves_without_val_columns(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro"])
        out.writerows([[1, 2.0, "", "", ""], [2, 1.5, "", "", ""]])
    assert png_size(plots.plot_curves(tmp_path, out=tmp_path / "c.png")) == (1000, 400)


def test_plot_of_a_folder_without_metrics_is_a_one_line_error(tmp_path, run_cli):
    code, _, err = run_cli("plot", tmp_path)
    assert code == 2 and "metrics.csv" in one_error_line(err)
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n")
    code, _, err = run_cli("plot", tmp_path)
    assert code == 2 and "no epoch" in one_error_line(err)


def test_confusion_png_has_class_names_and_fixed_size(tmp_path):
    names = [f"activity {i}" for i in range(18)]
    counts = np.random.default_rng(0).integers(0, 30, size=(18, 18))
    counts[3] = 0                                                   # an empty true class
    assert png_size(plots.plot_confusion(counts, names, tmp_path / "cm.png", "t")) == (800, 700)


def test_timeline_png_size_grows_with_recordings(trained, tmp_path):
    with torch_threads(1):
        predictor = Predictor.load(trained.checkpoint)
        one = predict_path(predictor, trained.held_out)
    unlabelled = Timeline("live.dat", one[0].start_s, one[0].end_s, one[0].predicted,
                          one[0].probability, np.full(len(one[0]), -1), (), labelled=False)
    for timelines in (one, one + [unlabelled]):
        path = plots.plot_timeline(timelines, predictor.classes, predictor.hop_s,
                                   tmp_path / f"t{len(timelines)}.png")
        width, height = (round(v * plots.DPI) for v in plots.timeline_size(len(timelines)))
        assert png_size(path) == (width, height) == (1200, 140 + 160 * len(timelines))


def test_matplotlib_is_a_runtime_dependency():
    """`har train` writes curves.png, so a plain `pip install harkit` brings matplotlib."""
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    names = lambda value: [re.split(r"[<>=!~ ;\[]", r.strip())[0]  # noqa: E731
                           for r in value.splitlines() if r.strip()]
    assert "matplotlib" in names(cfg["options"]["install_requires"])
    extras = cfg["options.extras_require"]
    assert all("matplotlib" not in names(extras[e]) for e in extras)


def test_without_matplotlib_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)     # import fails
    with pytest.raises(HarError, match=r"pip install matplotlib$"):
        plots.plot_confusion(np.eye(2, dtype=np.int64), ["a", "b"], tmp_path / "cm.png", "t")
