"""A run's figures, drawn by helper processes so that training neither imports matplotlib nor waits
while it draws.

Drawing is pure-Python matplotlib work that holds the GIL (0.15-0.25 s a figure) and importing
matplotlib costs about 0.6 s: in-process they were 14 % of a small MOSI run, helpers leave 4 %
(``benchmarks/run_overhead.py``). Two helpers per Python process (one on a single core) import
matplotlib while the model trains, redraw the training curves after an epoch (the PNG is live while a
long run goes on) and draw the rest side by side while the trainer evaluates; the trainer waits only
for what is still being drawn when it writes the report that embeds them.

A helper is ``python -m affectfusion.evaluation.figures``: one JSON drawing per line on its stdin,
one JSON answer per line on its stdout, in order. A fresh interpreter, not ``multiprocessing``: spawn
would re-run the caller's ``__main__`` script (a user's training script without a ``__main__`` guard
would train twice) and fork would copy torch's thread pools. JSON, not pickle: a :class:`Drawing`
is plain data (lists, numbers, strings). If the helper cannot start, dies or fails on a figure, the
figure is drawn in the caller: slower, never lost, and its error raised where it belongs.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from affectfusion.threads import cpu_budget

PLOTS = "affectfusion.evaluation.plots"
# Live figures (the training curves of a running run) are redrawn at most this often.
REFRESH_S = 5.0
# A helper that has not answered a figure for this long is taken for hung (one figure takes well under 1 s).
HUNG_S = 120.0

helper_enabled = True  # False: draw in the calling process (benchmarks compare both)


@dataclass(frozen=True)
class Drawing:
    """One figure: a function of :mod:`affectfusion.evaluation.plots` by name, the PNG it writes and
    its other keyword arguments (plain data: they travel to the helper as JSON)."""

    function: str
    path: Path
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Path:
        return getattr(importlib.import_module(PLOTS), self.function)(path=self.path, **self.kwargs)


class _Job:
    """A drawing handed to the helper: done when the helper answered (``path``) or gave up (None)."""

    def __init__(self, drawing: Drawing, helper: _Helper | None = None) -> None:
        self.drawing, self.helper = drawing, helper
        self.path: Path | None = None
        self.answered = threading.Event()

    def answer(self, path: Path | None) -> None:
        self.path = path
        self.answered.set()

    def done(self) -> bool:
        return self.answered.is_set()

    def result(self) -> Path:
        """The written path; drawn here if the helper could not (its error, if any, raised here)."""
        self.answered.wait()
        return self.path if self.path is not None else self.drawing()


class _Helper:
    """The helper process and the jobs it has not answered yet (answers come in order)."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__],  # -P: the working folder cannot shadow a module
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a failed figure is redrawn in the caller, which shows the error
            text=True,
            env=env,
        )
        self.waiting: deque[_Job] = deque()
        self.lock, self.write_lock = threading.Lock(), threading.Lock()
        threading.Thread(target=self._read_answers, args=(self.proc.stdout,), daemon=True).start()

    def submit(self, drawing: Drawing) -> _Job:
        """Queue ``drawing``; raises TypeError/ValueError for data that is not JSON, before queueing."""
        job = _Job(drawing, self)
        line = json.dumps({"function": drawing.function, "path": str(drawing.path), "kwargs": drawing.kwargs})
        with self.write_lock:  # jobs queue in the order their lines are written
            with self.lock:  # the reader thread takes only this one, so a full pipe never blocks it
                if self.proc.poll() is not None:
                    raise BrokenPipeError("figure helper exited")
                self.waiting.append(job)
            assert self.proc.stdin is not None  # the helper is started with stdin=PIPE
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except OSError:  # the helper died: drawn by the caller
                job.answer(None)
        return job

    def _read_answers(self, answers: IO[str]) -> None:
        for line in answers:
            with self.lock:
                job = self.waiting.popleft()
            path = json.loads(line).get("path")
            job.answer(Path(path) if path else None)
        with self.lock:  # the helper exited: whatever it had not drawn is drawn by the caller
            while self.waiting:
                self.waiting.popleft().answer(None)

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the helper's loop ends at end of input
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_helpers: list[_Helper] = []


def _get_helpers() -> list[_Helper]:
    """The process-wide helpers, started on first use (one, or two where two cores are free while the
    trainer waits); [] if disabled or unable to start."""
    if not helper_enabled or not sys.executable:  # an embedded interpreter has no python to start
        return []
    _helpers[:] = [h for h in _helpers if h.proc.poll() is None]
    while len(_helpers) < min(2, cpu_budget()):
        try:
            helper = _Helper()
        except OSError:
            break
        atexit.register(helper.close)
        _helpers.append(helper)
    return list(_helpers)


def start_helper() -> None:
    """Start the helpers now, so that matplotlib loads while the caller goes on (training, say)."""
    _get_helpers()


def draw_now(drawings: list[Drawing]) -> list[Path]:
    """Draw in this process (commands that draw once and exit: ``test``, ``calibrate``, ``compare``)."""
    return [d() for d in drawings]


class Figures:
    """The figures of one run: handed to the helper as they become drawable, waited for before the
    report that embeds them is written."""

    def __init__(self) -> None:
        self._pending: list[_Job] = []
        self._live: dict[Path, tuple[_Job, float]] = {}

    @staticmethod
    def _submit(drawing: Drawing, after: _Job | None = None) -> _Job:
        """To the least busy helper, or to the one drawing ``after`` (the same file: answers come in
        order, so the newer drawing lands last); drawn by the caller at :meth:`wait` without a helper."""
        helpers = _get_helpers()
        if after is not None and after.helper in helpers:
            helpers = [after.helper]
        for helper in sorted(helpers, key=lambda h: len(h.waiting)):
            try:
                return helper.submit(drawing)
            except OSError:  # this helper is gone
                continue
            except (TypeError, ValueError):  # data that is not JSON: no helper can take it
                break
        job = _Job(drawing)
        job.answer(None)
        return job

    def _latest(self, path: Path) -> _Job | None:
        """The newest drawing of ``path`` handed over so far (a later one goes to the same helper)."""
        jobs = [job for job in self._pending if job.drawing.path == path]
        live = self._live.get(path)
        return live[0] if live is not None else (jobs[-1] if jobs else None)

    def draw(self, *drawings: Drawing) -> None:
        """Draw these (in a helper if one runs, else at :meth:`wait`); a figure already drawn or pending
        from the same data is not drawn again."""
        for drawing in drawings:
            latest = self._latest(drawing.path)
            live = self._live.pop(drawing.path, None)
            if live is not None:
                self._pending.append(live[0])
            if latest is None or latest.drawing != drawing:
                self._pending.append(self._submit(drawing, after=latest))

    def refresh(self, drawing: Drawing) -> None:
        """Redraw a live figure (training curves after an epoch) unless its previous drawing is still
        running or was started less than :data:`REFRESH_S` ago; :meth:`draw` draws its final state."""
        previous = self._live.get(drawing.path)
        if previous is not None and (not previous[0].done() or time.monotonic() - previous[1] < REFRESH_S):
            return
        if _get_helpers():  # without a helper the final drawing is enough
            job = self._submit(drawing, after=self._latest(drawing.path))
            self._live[drawing.path] = (job, time.monotonic())

    def wait(self) -> list[Path]:
        """Block until the newest drawing of every file handed to :meth:`draw` or :meth:`refresh`
        exists; their paths. Older drawings of a file are only waited for: they land first."""
        jobs = self._pending + [job for job, _ in self._live.values()]
        self._pending, self._live = [], {}
        newest = {job.drawing.path: job for job in jobs}
        for job in jobs:
            if not job.answered.wait(HUNG_S) and job.helper is not None:
                job.helper.proc.kill()  # a hung helper: its unanswered figures are drawn here
                job.answered.wait()
        return [job.result() for job in newest.values()]


def helper_loop(requests: IO[str], answers: IO[str]) -> None:
    """The helper's loop: draw each JSON drawing read from ``requests``; answer its path, or null when
    it failed (the caller then draws it and sees the error)."""
    importlib.import_module(PLOTS)  # matplotlib loads before the first figure is due
    for line in requests:
        try:
            request = json.loads(line)
            path = Drawing(request["function"], Path(request["path"]), request["kwargs"])()
            answer: dict[str, str | None] = {"path": str(path)}
        except Exception:  # reported to the caller, which redraws it and raises the error
            answer = {"path": None}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    helper_loop(sys.stdin, sys.stdout)
