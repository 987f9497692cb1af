"""``chainrule memory``: the table, the plot, the budget, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from chainrule.cli import app
from chainrule.memory import report

runner = CliRunner()


def test_memory_table_and_plot(tmp_path):
    out = tmp_path / "memory.png"
    result = runner.invoke(app, ["memory", "--hidden", "256,256,256,256", "--batch-sizes",
                                 "64,1024", "--budget", "64MiB", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert "largest batch within 64 MiB" in result.output
    assert out.stat().st_size > 5_000


def test_memory_json_matches_the_report_function():
    result = runner.invoke(app, ["memory", "--hidden", "128", "--input-dim", "20",
                                 "--classes", "3", "--batch-sizes", "10,100", "--budget", "1MiB",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = report([128], 20, 3, [10, 100], budget="1MiB").as_dict()
    assert data == json.loads(json.dumps(expected))


def test_memory_user_errors():
    for args in (["--batch-sizes", "3,x"], ["--hidden", "a"], ["--budget", "lots"],
                 ["--plot", "out.gif"]):
        result = runner.invoke(app, ["memory", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error:")


def test_memory_refuses_parameters_that_cannot_fit(monkeypatch):
    from chainrule.memory import reporting

    monkeypatch.setattr(reporting, "available_bytes", lambda: 16 * 1024**3)
    result = runner.invoke(app, ["memory", "--hidden", "1000000000"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "parameters" in lines[0] and "2.89 TiB" in lines[0] and "16 GiB" in lines[0]


def _cli(*args: str) -> subprocess.CompletedProcess:
    # the timeout only stops a hang (the 83 s of issue 14); it is no measure of speed
    return subprocess.run([sys.executable, "-m", "chainrule", "memory", *args],
                          capture_output=True, text=True, timeout=120)


def test_memory_with_absurd_sizes_answers_at_once():
    # parameters that fit neither the machine (nor, where its memory is unknown, the budget)
    done = _cli("--hidden", "1000000000", "--budget", "1GiB")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: memory report: the parameters of MLP 784-1000000000-10")
    # an absurd batch of a small network: only arithmetic, a row of petabytes
    done = _cli("--batch-sizes", "100000000000,32", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert rows[0]["batch_size"] == 100_000_000_000 and rows[0]["plain"]["peak"] > 2**50
