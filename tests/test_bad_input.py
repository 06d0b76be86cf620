"""Every bad input through the real command line: one line ``error: …`` on stderr, exit status 2, no traceback,
and nothing written: no output file, no temporary file, no run directory (an existing one left as it was).

Each case runs in-process through typer's CliRunner (the same code path as the installed script, fast); the cases
marked ``SUBPROCESS`` also run as ``python -m difflab`` in a child process, all at once, to check the real exit
status and stderr without pytest in between.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from difflab.cli import app
from helpers import listing

RUNNER = CliRunner()


def _csv(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A folder with bad inputs and a few tiny trained runs (D = 2 and D = 3), some of them then damaged."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    _csv(root / "nan.csv", "a,b\n1,2\n3,nan\n5,6\n")
    _csv(root / "inf.csv", "a,b\n1,2\n3,inf\n5,6\n")
    _csv(root / "text.csv", "a,b\n1,x\n3,y\n5,z\n")
    _csv(root / "empty.csv", "")
    _csv(root / "header.csv", "a,b\n")
    _csv(root / "one.csv", "a,b\n1,2\n")
    _csv(root / "const.csv", "a,b\n7,2\n7,3\n7,4\n7,5\n")
    for name, d in (("two.csv", 2), ("three.csv", 3)):
        np.savetxt(root / name, rng.normal(size=(40, d)), delimiter=",", header=",".join("abc"[:d]), comments="")
    _csv(root / "broken.toml", "[train\nsteps = 3\n")
    _csv(root / "unknown.toml", "[train]\nstepz = 3\n")
    _csv(root / "unknown_top.toml", "[trian]\nsteps = 3\n")
    _csv(root / "afile", "not a folder\n")
    for name, data in (("run2", "two.csv"), ("run3", "three.csv")):
        result = RUNNER.invoke(app, ["train", "--preset", "seed", "--data", str(root / data), "--steps", "3",
                                     "--out", str(root / name), "-q"])
        assert result.exit_code == 0, result.output
    for name in ("truncated", "nomodel", "badconfig", "badnpy", "foreign", "badcheckpoint"):
        shutil.copytree(root / "run2", root / name)
    weights = (root / "run2" / "model.safetensors").read_bytes()
    (root / "truncated" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (root / "nomodel" / "model.safetensors").unlink()
    _csv(root / "badconfig" / "config.json", "{")
    _csv(root / "badnpy" / "train.npy", "not numpy")
    shutil.copy(root / "run3" / "model.safetensors", root / "foreign" / "model.safetensors")
    (root / "badcheckpoint" / "checkpoint.safetensors").write_bytes(b"\0" * 64)
    return root


HAS_PROC = Path("/proc/self").exists()  # Linux: a folder in which no file can be created, even by root

# (id, argv, words the error must contain). Paths are relative to the workspace; the command runs there.
CASES = [
    # data
    ("nan", "train --data nan.csv --out new", ["nan.csv", "'b'", "missing (NaN)"]),
    ("inf", "train --data inf.csv --out new", ["inf.csv", "'b'", "infinite"]),
    ("text-as-integer", "train --data text.csv --integer b --out new", ["text.csv", "'b'", "not numbers"]),
    ("unknown-categorical", "train --data text.csv --categorical c --out new", ["text.csv", "no column 'c'"]),
    ("empty-file", "train --data empty.csv --out new", ["empty.csv", "empty"]),
    ("header-only", "train --data header.csv --out new", ["header.csv", "no data rows"]),
    ("one-row", "train --data one.csv --out new", ["one.csv", "at least 2 rows"]),
    ("one-level-categorical", "train --data const.csv --categorical a --out new", ["const.csv", "'a'", "one value"]),
    ("missing-file", "train --data nothere.csv --out new", ["nothere.csv", "not found"]),
    ("unknown-column", "train --data two.csv --columns a,z --out new", ["two.csv", "'z'"]),
    ("columns-on-toy", "train --data moons --columns a --out new", ["--columns", "moons"]),
    # names
    ("unknown-dataset", "train --data nosuchtoy --out new", ["unknown dataset 'nosuchtoy'", "moons"]),
    ("unknown-schedule", "train --schedule wavy --out new", ["unknown schedule 'wavy'", "cosine"]),
    ("unknown-model", "train --model huge --out new", ["unknown model 'huge'", "mlp"]),
    ("unknown-scaler", "train --scaler log --out new", ["--scaler", "minmax"]),
    ("unknown-preset", "train --preset fastest --out new", ["--preset", "unknown preset 'fastest'"]),
    ("unknown-sampler", "sample run2 --sampler euler --out s.csv", ["unknown sampler 'euler'", "ddim"]),
    ("unknown-kind", "plot run2 --kind heatmap --out figs", ["unknown figure kind 'heatmap'"]),
    ("field-needs-2d", "plot run3 --kind field --out figs", ["--kind field", "D = 3"]),
    # numbers
    ("negative-steps", "train --steps -5 --out new", ["--steps", "greater than or equal to 1", "-5"]),
    ("zero-T", "train --T 0 --out new", ["--T", "greater than or equal to 1"]),
    ("zero-lr", "train --lr 0 --out new", ["--lr", "greater than 0"]),
    ("not-a-number", "train --steps many --out new", ["--steps", "valid integer"]),
    ("n-zero", "sample run2 --n 0 --out s.csv", ["--n must be at least 1, got 0"]),
    ("sample-steps-above-T", "sample run2 --steps 11 --out s.csv", ["--steps 11", "T=10"]),
    ("negative-eta", "sample run2 --sampler ddim --eta -1 --out s.csv", ["--eta", "greater than or equal to 0"]),
    ("field-t-outside", "plot run2 --kind field --t 11 --out figs", ["--t 11", "1..T=10"]),
    ("plot-n-zero", "plot run2 --n 0 --out figs", ["--n must be at least 1"]),
    # configs
    ("bad-toml", "train --config broken.toml --out new", ["broken.toml", "not valid TOML"]),
    ("unknown-toml-key", "train --config unknown.toml --out new", ["unknown.toml", "unknown key 'train.stepz'"]),
    ("unknown-toml-table", "train --config unknown_top.toml --out new", ["unknown key 'trian'"]),
    ("missing-toml", "train --config none.toml --out new", ["none.toml", "not found"]),
    # run directories
    ("no-run-dir", "sample nowhere --out s.csv", ["nowhere", "not found"]),
    ("truncated-weights", "sample truncated --out s.csv", ["truncated/model.safetensors", "corrupt"]),
    ("missing-weights", "sample nomodel --out s.csv", ["nomodel", "missing model.safetensors"]),
    ("corrupt-config", "plot badconfig --out figs", ["badconfig/config.json", "not valid JSON"]),
    ("corrupt-array", "sample badnpy --out s.csv", ["badnpy/train.npy", "corrupt"]),
    ("weights-of-another-run", "sample foreign --out s.csv", ["foreign/model.safetensors", "another run"]),
    ("resume-other-width", "train --out run2 --resume --steps 6 --data three.csv", ["D=2", "D=3", "three.csv"]),
    ("resume-corrupt-checkpoint", "train --out badcheckpoint --resume --steps 6", ["checkpoint", "corrupt"]),
    ("resume-nothing", "train --out new --resume", ["new", "no checkpoint.safetensors"]),
    ("train-over-a-run", "train --preset seed --out run2", ["run2", "already holds a trained run"]),
    ("resume-fewer-steps", "train --out run2 --resume --steps 2", ["--steps 2", "3 steps"]),
    # outputs
    ("unknown-extension", "sample run2 --out s.txt", ["s.txt", "unknown output format '.txt'"]),
    ("no-extension", "sample run2 --out samples", ["samples", "unknown output format"]),
    ("trajectory-not-npy", "sample run2 --out s.csv --trajectory t.csv", ["t.csv", ".npy"]),
    ("sample-into-proc", "sample run2 --out /proc/x.csv", ["/proc/x.csv", "cannot create files in /proc"]),
    ("sample-under-a-file", "sample run2 --out afile/s.csv", ["afile/s.csv", "afile is a file"]),
    ("train-into-proc", "train --preset seed --out /proc/run", ["/proc/run", "cannot create files"]),
    ("train-under-a-file", "train --preset seed --out afile/run", ["afile/run", "afile is a file"]),
    ("train-out-is-a-file", "train --preset seed --out afile", ["afile", "not a folder"]),
    ("plot-under-a-file", "plot run2 --out afile/figs", ["afile/figs", "afile is a file"]),
    # usage
    ("missing-out", "train --preset seed", ["Missing option '--out'"]),
    ("unknown-option", "sample run2 --out s.csv --temperature 2", ["--temperature"]),
    ("unknown-command", "fit", ["No such command 'fit'"]),
]
# Also run as a child process: every case that fails before torch is imported (cheap), and a bad data file and an
# unwritable output (each costs a few CPU seconds of imports; the other cases take the same path in-process).
SUBPROCESS = ["negative-steps", "unknown-preset", "bad-toml", "unknown-toml-key", "n-zero", "missing-out",
              "nan", "sample-into-proc"]


def _check(ws: Path, case_id: str, code: int, stderr: str, stdout: str, words: list[str]) -> None:
    assert code == 2, f"{case_id}: exit status {code}\n{stderr}"
    assert "Traceback" not in stderr + stdout, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


@pytest.mark.parametrize(("case_id", "argv", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(ws, monkeypatch, case_id, argv, words):
    if "/proc" in argv and not HAS_PROC:
        pytest.skip("needs /proc")
    monkeypatch.chdir(ws)
    before = listing(ws)
    result = RUNNER.invoke(app, argv.split())
    assert isinstance(result.exception, SystemExit), result.exception
    _check(ws, case_id, result.exit_code, result.stderr, result.stdout, words)
    assert listing(ws) == before  # nothing created, changed or left behind


@pytest.fixture(scope="module")
def subprocess_results(ws) -> dict[str, tuple[int, str, str, bool]]:
    """Run the SUBPROCESS cases as `python -m difflab`, all at once; note whether ``ws`` changed."""
    cases = {c[0]: c[1].split() for c in CASES if c[0] in SUBPROCESS and (HAS_PROC or "/proc" not in c[1])}
    before = listing(ws)
    procs = {cid: subprocess.Popen([sys.executable, "-m", "difflab", *argv], cwd=ws, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for cid, argv in cases.items()}
    results = {}
    for cid, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[cid] = (proc.returncode, out, err)
    unchanged = listing(ws) == before
    return {cid: (*r, unchanged) for cid, r in results.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_bad_input_in_a_subprocess(subprocess_results, ws, case_id):
    if case_id not in subprocess_results:
        pytest.skip("needs /proc")
    code, out, err, unchanged = subprocess_results[case_id]
    words = next(c[2] for c in CASES if c[0] == case_id)
    _check(ws, case_id, code, err, out, words)
    assert unchanged


def test_warnings_are_one_line(tmp_path):
    """A warning (here: a schedule that does not reach noise) is printed as one line, and the command succeeds."""

    def show(message, category, filename, lineno, file=None, line=None):  # what Python's default does
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show  # pytest records warnings; print them as a plain interpreter would
        argv = "train --preset seed --n 50 --T 2 --steps 2 -q --out".split()
        result = RUNNER.invoke(app, [*argv, str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("warning: ") for line in lines), result.stderr
    assert any("ᾱ_T" in line for line in lines)
