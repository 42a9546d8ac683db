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
    rows = [[c["activity_id"], c["name"]] + [meta["splits"][s]["per_class"][c["name"]]
                                              for s in splits]
            for c in meta["classes"]]
    rows.append(["", "total"] + [meta["splits"][s]["windows"] for s in splits])
    dropped = meta["dropped"]
    nan = sum(dropped["windows_with_missing_values"].values())
    subjects = "; ".join(f"{s} {','.join(map(str, meta['splits'][s]['subjects']))}"
                         for s in splits)
    notes = (f"subjects: {subjects}\n"
             f"{len(meta['channels'])} channels at {meta['sample_rate_hz']:.1f} Hz, window "
             f"{meta['window']} steps ({meta['window_s']:.2f} s), stride {meta['stride']}; dropped "
             f"{nan} windows with missing values, {dropped['runs_shorter_than_window']} runs "
             "shorter than a window")
    return format_table(header, rows, align_left=2) + "\n" + notes
