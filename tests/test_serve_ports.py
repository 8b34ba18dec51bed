"""A port in use is one line naming the port and ``--port``, said before the model loads."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import affectfusion.serve.dashboard as dashboard
import affectfusion.serve.predictor as predictor_module
from affectfusion.errors import AffectFusionError
from affectfusion.serve.ports import check_port
from tests.helpers import run_cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def nothing_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API loads its model in this process; the dashboard's Streamlit process loads it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded (or Streamlit started) before the port was checked")

    monkeypatch.setattr(predictor_module, "load_predictor", refuse)
    monkeypatch.setattr(dashboard.subprocess, "Popen", refuse)


@pytest.mark.parametrize("command", ["api", "dashboard"])
def test_a_port_in_use_is_one_line_before_the_model_loads(
    command: str, busy_port: int, nothing_loads: None, trained_features_run: Path, capsys, monkeypatch
) -> None:
    args = ["serve", command, str(trained_features_run), "--port", str(busy_port)]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert f"port {busy_port}" in err and "--port" in err and "in use" in err


def test_a_free_port_passes(busy_port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    check_port("127.0.0.1", free)
    with pytest.raises(AffectFusionError, match=rf"port {busy_port} on 127\.0\.0\.1 is in use.*choose another --port"):
        check_port("127.0.0.1", busy_port)
