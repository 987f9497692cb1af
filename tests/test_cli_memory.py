"""``chainrule memory``: the table, the plot, the budget, and user errors."""

from __future__ import annotations

import json

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
