"""Running the command line in-process, and the one-line error every bad input must give."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from difflab.cli import app

RUNNER = CliRunner()


def cli(*args: object) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args])


def one_line_error(result: Result, *words: str) -> None:
    """Exit code 2 and one line on stderr (warnings aside) that starts with "error: " and holds every word."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]
