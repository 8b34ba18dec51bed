"""The figure helper (:mod:`affectfusion.evaluation.figures`): figures drawn in helper processes, the same
files as drawn in the caller, nothing lost when a helper dies, errors raised where they belong."""

from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd
import pytest

from affectfusion.errors import AffectFusionError
from affectfusion.evaluation import figures
from affectfusion.evaluation.figures import Drawing, Figures, draw_now
from affectfusion.evaluation.report import curves_drawing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val": {"macro_f1": 0.2 * e}} for e in (1, 2, 3)]


def confusion(path: Path) -> Drawing:
    return Drawing("plot_confusion_matrix", path, {"cm": [[3, 1], [0, 4]], "classes": ["neg", "pos"], "title": "t"})


def test_helpers_draw_what_the_caller_would(tmp_path: Path) -> None:
    drawings = [curves_drawing(tmp_path / "helper", HISTORY, "macro_f1"), confusion(tmp_path / "helper" / "cm.png")]
    batch = Figures()
    batch.draw(*drawings)
    jobs = list(batch._pending)
    assert sorted(batch.wait()) == sorted(d.path for d in drawings)
    assert all(job.helper is not None and job.path is not None for job in jobs), "drawn by the helpers"
    for drawing in drawings:
        assert drawing.path.read_bytes()[:8] == PNG_MAGIC
        assert drawing.path.stat().st_size > 10_000


def test_a_dead_helper_loses_no_figure(tmp_path: Path) -> None:
    figures.start_helper()
    for helper in figures._helpers:
        helper.proc.kill()
        helper.proc.wait()
    batch = Figures()
    batch.draw(confusion(tmp_path / "a.png"))
    assert batch.wait() == [tmp_path / "a.png"]
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    assert figures._helpers and all(h.proc.poll() is None for h in figures._helpers), "new helpers started"


def test_an_error_in_a_drawing_is_raised_by_wait(tmp_path: Path) -> None:
    batch = Figures()
    batch.draw(curves_drawing(tmp_path, [], None))
    with pytest.raises(AffectFusionError, match="no training history"):
        batch.wait()


def test_a_live_figure_is_not_drawn_again_for_the_same_data(tmp_path: Path) -> None:
    batch = Figures()
    live = curves_drawing(tmp_path, HISTORY, "macro_f1")
    batch.refresh(live)
    batch.refresh(curves_drawing(tmp_path, HISTORY[:2], "macro_f1"))  # skipped: the first is still running
    batch.draw(curves_drawing(tmp_path, HISTORY, "macro_f1"))  # the same data: not drawn again
    assert len(batch._pending) == 1
    assert batch.wait() == [live.path]


def test_without_helpers_figures_are_drawn_by_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "helper_enabled", False)
    batch = Figures()
    batch.refresh(curves_drawing(tmp_path, HISTORY, None))  # no live figures without a helper
    assert not batch._live
    batch.draw(confusion(tmp_path / "cm.png"))
    assert batch.wait() == [tmp_path / "cm.png"]


def test_data_that_is_not_json_is_drawn_by_the_caller(tmp_path: Path) -> None:
    df = pd.DataFrame({"run": ["a", "b"], "accuracy": [0.5, 0.6]})
    drawing = Drawing("plot_comparison", tmp_path / "cmp.png", {"df": df, "metrics": ["accuracy"], "title": "x"})
    batch = Figures()
    batch.draw(drawing)
    assert batch.wait() == [drawing.path]
    assert draw_now([drawing]) == [drawing.path]


def test_the_newest_drawing_of_a_file_lands_last(tmp_path: Path) -> None:
    older, newer = (
        Drawing("plot_confusion_matrix", tmp_path / "cm.png", {"cm": cm, "classes": ["neg", "pos"], "title": "t"})
        for cm in ([[3, 1], [0, 4]], [[9, 0], [0, 9]])
    )
    batch = Figures()
    batch.draw(older)
    batch.draw(newer)
    assert batch.wait() == [tmp_path / "cm.png"]
    (expected,) = draw_now([Drawing(newer.function, tmp_path / "expected.png", newer.kwargs)])
    assert (tmp_path / "cm.png").read_bytes() == expected.read_bytes()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals to freeze a helper")
def test_a_hung_helper_is_replaced_by_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures.start_helper()
    stopped = list(figures._helpers)
    for helper in stopped:
        helper.proc.send_signal(signal.SIGSTOP)  # alive, never answering
    monkeypatch.setattr(figures, "HUNG_S", 1.0)
    try:
        batch = Figures()
        batch.draw(confusion(tmp_path / "a.png"))
        assert batch.wait() == [tmp_path / "a.png"]
        assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    finally:
        for helper in stopped:  # the later tests get fresh helpers
            helper.proc.kill()
            helper.proc.wait()
