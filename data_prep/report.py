"""Plain-text tables for the terminal."""

from __future__ import annotations

from typing import List, Sequence


def format_table(header: Sequence[str], rows: List[Sequence], align_left: int = 1) -> str:
    """A fixed-width table; the first ``align_left`` columns are left-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i < align_left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def format_class_table(meta: dict) -> str:
    """Windows per class per split of a prepared folder's meta.json."""
    splits = list(meta["splits"])
    header = ["id", "activity"] + splits
    rows = [[_id(c), c["name"]] + [meta["splits"][s]["per_class"][c["name"]] for s in splits]
            for c in meta["classes"]]
    rows.append(["", "total"] + [meta["splits"][s]["windows"] for s in splits])
    dropped = meta["dropped"]
    nan = dropped.get("windows_with_missing_values", 0)
    nan = sum(nan.values()) if isinstance(nan, dict) else nan
    subjects = "; ".join(f"{s} {','.join(map(str, meta['splits'][s]['subjects']))}"
                         for s in splits)
    what = "cases" if meta.get("subjects_are") == "cases" else "subjects"
    counts = "; ".join(f"{s} {len(meta['splits'][s]['subjects'])}" for s in splits)
    lines = [f"subjects: {subjects}" if what == "subjects" else f"cases: {counts}"]
    if meta.get("stride") is not None:
        rate = f"{meta['sample_rate_hz']:.1f} Hz" if meta["sample_rate_hz"] else "no stated rate"
        lines.append(
            f"{len(meta['channels'])} channels at {rate}, window {meta['window']} steps "
            f"({meta['window_s']:.2f} s), stride {meta['stride']}; dropped {nan} windows with "
            f"missing values, {dropped.get('runs_shorter_than_window', 0)} runs shorter than a "
            "window")
    elif meta.get("sample_rate_hz"):
        lines.append(f"{len(meta['channels'])} channels at {meta['sample_rate_hz']:.1f} Hz, "
                     f"windows of {meta['window']} steps ({meta['window_s']:.2f} s) as the "
                     f"archive cut them; dropped {nan} windows with missing values")
    else:
        lines.append(f"{len(meta['channels'])} channels, {meta['window']} steps per case; "
                     f"dropped {nan} cases with missing values")
    other, unlabelled = dropped.get("rows_other_labels", 0), dropped.get("rows_without_label", 0)
    if other:
        named = ", ".join(f"{k} ({v:,})" for k, v in list(dropped.get("other_labels", {})
                                                             .items())[:5])
        lines.append(f"dropped {other:,} rows whose label is not a class: {named}")
    if unlabelled:
        lines.append(f"dropped {unlabelled:,} rows without a label")
    skipped = dropped.get("records_skipped") or {}
    if skipped:
        causes = ", ".join(f"{cause} {n:,}" for cause, n in skipped.items())
        lines.append(f"skipped {sum(skipped.values()):,} flawed records ({causes}; first lines "
                     "in meta.json sources)")
    aa = meta.get("antialias") or {}
    if aa.get("applied"):
        lines.append(f"antialias: {aa['filter']}; {aa['windows_at_run_edges']} windows read "
                     "past their run's edge (edge rows repeated)")
    return format_table(header, rows, align_left=2) + "\n" + "\n".join(lines)


def _id(c: dict):
    cid = c.get("id")
    return "" if cid is None or cid == c["name"] else cid


def format_datasets(adapters) -> str:
    """``har datasets``: one block per adapter: kind, rate, channels, classes, subjects, layout,
    with the channels and classes of its packaged defaults."""
    from data_prep.config import load_prepare_config

    blocks = []
    for a in adapters:
        opts = load_prepare_config(None, None, a.name)
        channels, classes = a.channels(opts), a.classes(opts)
        rate = (f"{a.rate_hz:g} Hz" if a.rate_hz else
                "not stated (cases)" if a.kind == "windows" else "from the data")
        lines = [f"{a.name}: {a.title}",
                 f"  kind      {'raw recordings' if a.kind == 'recordings' else 'pre-cut windows'}"
                 + (", streams with 'har predict --follow'" if a.streams else ""),
                 f"  rate      {rate}",
                 "  channels  " + (f"{len(channels)} by default: {_few(c.name for c in channels)}"
                                   if channels else "from the data"),
                 "  classes   " + (f"{len(classes)}: {_few(c.name for c in classes)}" if classes
                                   else "from the data"),
                 f"  subjects  {a.subjects_from}",
                 f"  layout    {a.layout}",
                 f"  defaults  configs/{a.name}.toml"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _few(names, most: int = 6) -> str:
    names = list(names)
    return ", ".join(names[:most]) + (f", ... ({len(names) - most} more)" if len(names) > most
                                      else "")
