"""Memory page policy while preparing: small (4 KiB) pages only.

Preparing writes each large array once and streams through it, so transparent huge pages
(THP) save little TLB work there, while each first touch zeroes a whole 2 MiB page. On VMs
whose free memory goes back to the host (virtio-balloon free page reporting hands back exactly
such 2 MiB blocks) every huge page is also a fresh host allocation, and a cold CSV prepare
took 0.1-0.2 s longer with them, and varied more (docs/BENCHMARKS.md). Two sources ask for
huge pages in a ``prepare``:

* numpy advises ``MADV_HUGEPAGE`` on every array of 4 MiB or more;
* pyarrow's allocator (mimalloc) advises it on its whole 1 GiB arena.

:func:`small_pages` turns both off for its duration and restores them after. A user who sets
``NUMPY_MADVISE_HUGEPAGE`` (either value) has chosen a policy, which harkit then leaves alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import numpy as np

#: Linux ``prctl`` options: the process's "no transparent huge pages" flag (Linux 3.15+).
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42
#: The environment variable that leaves the page policy to the user.
USER_CHOICE = "NUMPY_MADVISE_HUGEPAGE"


def huge_page_switch():
    """numpy's ``_set_madvise_hugepage`` (numpy 1.x and 2.x), or None where it has none."""
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    return getattr(multiarray, "_set_madvise_hugepage", None)


def _prctl():
    """libc's ``prctl`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _thp_call(prctl, option: int, value: int = 0) -> int:
    arg = ctypes.c_ulong
    return int(prctl(ctypes.c_int(option), arg(value), arg(0), arg(0), arg(0)))


@contextlib.contextmanager
def thp_disabled():
    """The process's transparent huge pages off inside (``prctl(PR_SET_THP_DISABLE)``, which
    overrides any ``MADV_HUGEPAGE`` advice for the pages faulted meanwhile), as they were
    after; nothing where the call is not available."""
    prctl = _prctl()
    before = _thp_call(prctl, PR_GET_THP_DISABLE) if prctl is not None else -1
    if before < 0 or _thp_call(prctl, PR_SET_THP_DISABLE, 1) != 0:
        yield
        return
    try:
        yield
    finally:
        _thp_call(prctl, PR_SET_THP_DISABLE, before)


@contextlib.contextmanager
def small_pages():
    """numpy's huge-page advice and the process's transparent huge pages off inside (restored
    after), unless ``NUMPY_MADVISE_HUGEPAGE`` is set."""
    if USER_CHOICE in os.environ:
        yield
        return
    switch = huge_page_switch()
    before = switch(False) if switch is not None else None
    try:
        with thp_disabled():
            yield
    finally:
        if switch is not None:
            switch(before)
