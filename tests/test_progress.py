"""Progress output: a bar on a terminal, a handful of plain lines in a log file or a pipe."""

from __future__ import annotations

import io

import pytest
import torch

from difflab.compute import cpu_threads
from difflab.config import TrainConfig
from difflab.models import build_model
from difflab.progress import LINE_SECONDS, LineProgress, NoProgress, is_terminal, progress_bar
from difflab.training.trainer import Trainer
from helpers import diffusion as make_diffusion


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_per_tenth_of_the_work() -> None:
    """5000 updates of one step each (the worst case): ten lines, the last at 5000/5000."""
    stream = io.StringIO()
    bar = progress_bar(5000, desc="train", stream=stream)
    assert isinstance(bar, LineProgress)
    for _ in range(5000):
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert [int(line.split()[1].split("/")[0]) for line in lines] == list(range(500, 5001, 500))
    assert lines[-1].startswith("train: 5000/5000 (100%)") and "\r" not in stream.getvalue()


def test_off_a_terminal_a_line_after_thirty_seconds_without_one() -> None:
    """A slow run still shows life: a line once LINE_SECONDS passed, however little was done."""
    stream, clock = io.StringIO(), Clock()
    bar = LineProgress(1000, desc="train", stream=stream, clock=clock)
    bar.update(1)
    clock.now = LINE_SECONDS - 0.1
    bar.update(1)
    assert stream.getvalue() == ""
    clock.now = LINE_SECONDS
    bar.set_postfix(loss="0.5000")
    bar.update(1)
    assert stream.getvalue() == "train: 3/1000 (0%) 30.0 s, loss=0.5000\n"
    bar.close()  # and the last state at the end
    assert stream.getvalue().splitlines()[-1].startswith("train: 3/1000")


def test_resumed_and_uneven_progress() -> None:
    """Counting starts at ``initial``; close writes the end only if something happened since the last line."""
    stream, clock = io.StringIO(), Clock()
    bar = LineProgress(100, initial=40, desc="x", stream=stream, clock=clock)
    bar.update(7)
    clock.now = 2.0
    bar.update(3)  # 10 since the start: one line
    bar.close()  # nothing since: no second line
    assert stream.getvalue() == "x: 50/100 (50%) 2.0 s\n"
    empty = io.StringIO()
    progress_bar(0, stream=empty).close()
    assert empty.getvalue() == ""


def test_terminal_gets_tqdm_and_disabled_gets_nothing() -> None:
    from tqdm.auto import tqdm

    bar = progress_bar(10, desc="t", stream=FakeTTY())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress_bar(10, enabled=False, stream=FakeTTY()), NoProgress)


def test_streams_without_a_working_isatty_count_as_files() -> None:
    closed = io.StringIO()
    closed.close()  # isatty() raises ValueError on a closed file
    assert is_terminal(closed) is False
    assert is_terminal(object()) is False  # no isatty at all
    assert is_terminal(io.StringIO()) is False and is_terminal(FakeTTY()) is True


def test_trainer_fit_writes_a_few_lines_to_a_log(dim: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Trainer.fit with progress on, stderr captured (not a terminal): about ten lines for 1000 steps."""
    torch.manual_seed(0)
    x = torch.rand(64, dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tr = Trainer(build_model("seed", dim, 10), make_diffusion("poly", 10), x, TrainConfig(steps=1000, seed=0, device="cpu"))
    with cpu_threads(1):
        tr.fit(progress=True)
    err = capsys.readouterr().err.splitlines()
    assert 1 <= len(err) <= 12 and err[-1].startswith("train: 1000/1000 (100%)") and "loss=" in err[-1]
