"""Torch intra-op threads for score networks: chosen by the network's size, overridable, always restored.

Small MLPs spend their time in kernel launches and thread hand-offs, not in arithmetic: on a shared 2-core CPU a
3 x 128 ScoreMLP trained at 44 steps/s with torch's default thread count against 231-263 with one thread
(issue 13), because the extra threads spin-wait. :func:`choose_threads` therefore gives one thread to networks
below :data:`SMALL_PARAMS` parameters and leaves torch's current count to larger ones.
"""

from __future__ import annotations

import contextlib

import torch

from . import _marginal

SMALL_PARAMS = 200_000  # parameters below which one intra-op thread is fastest (ScoreMLP 3 x 128: ~35,000)


def n_params(net: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def choose_threads(net: torch.nn.Module | None) -> int:
    """Intra-op threads for ``net``: 1 below :data:`SMALL_PARAMS` parameters, else torch's current count."""
    if net is None or n_params(net) >= SMALL_PARAMS:
        return int(torch.get_num_threads())
    return 1


def _check(threads) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


@contextlib.contextmanager
def torch_threads(model, threads: int | None = None, info: dict | None = None):
    """Run the block with ``threads`` torch intra-op threads (``None``: :func:`choose_threads` of the network),
    restoring the previous count afterwards (also on errors). ``model`` is a network, a score declaring
    ``uses_torch`` (its ``net``), or anything else (no torch work: the count is left alone unless ``threads``
    is given). ``info`` receives ``threads``."""
    threads = _check(threads)
    if isinstance(model, torch.nn.Module):
        net = model
    elif _marginal.score_fact(model, "uses_torch"):
        net = model.net
    else:
        net = None
    if threads is None and net is None:
        if info is not None:
            info["threads"] = int(torch.get_num_threads())
        yield
        return
    want = threads if threads is not None else choose_threads(net)
    before = int(torch.get_num_threads())
    if info is not None:
        info["threads"] = want
    try:
        if want != before:
            torch.set_num_threads(want)
        yield
    finally:
        if int(torch.get_num_threads()) != before:
            torch.set_num_threads(before)
