"""The one progress bar of the engines (``simulate``, ``FokkerPlanck.evolve``, ``mcmc.langevin``).

``progress=True`` shows a tqdm bar at once, ``False`` never, ``None`` (the default) opens it only once the run
is projected to take more than ~2 s, so short calls stay silent and long ones show their progress.
"""

from __future__ import annotations

import time

AUTO_SECONDS = 2.0


class Progress:
    """A tqdm bar over ``total`` units; :meth:`update` adds ``n`` done units."""

    def __init__(self, total: int, mode: bool | None, desc: str, unit: str = "step"):
        self.total, self.mode, self.desc, self.unit = int(total), mode, desc, unit
        self._postfix: dict = {}
        self.start = time.perf_counter()
        self.bar = None
        self.done = 0
        if mode is True:
            self._open()

    def _open(self) -> None:
        from tqdm.auto import tqdm

        bar = self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, initial=self.done, leave=False)
        if self._postfix:
            bar.set_postfix(self._postfix, refresh=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode is None and self.done < self.total:
            el = time.perf_counter() - self.start
            if el > 0.2 and el / self.done * self.total > AUTO_SECONDS:
                self._open()

    def postfix(self, **values) -> None:
        """Show ``values`` after the bar (e.g. ``done=3, running=2, failed=0``)."""
        self._postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(self._postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
