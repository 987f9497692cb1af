"""``chainrule evaluate`` in Python: the metrics of a trained model on a part of its run's exact
split (replayed from ``split.json``), or on new labelled data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.mapped import rows_of
from ..errors import InvalidValueError
from .model_file import RunModel, load_run_model
from .source import SPLIT_NAME, read_split, replay
from .training import encode_targets, evaluate_rows


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    model: RunModel
    what: str          # "test part of <source>" or the data file


def evaluate_run(path: str | Path, part: str = "test", data: str | Path | None = None, *,
                 header: bool = True, delimiter: str | None = None,
                 encoding: str | None = None) -> Evaluation:
    """Metrics of the model in ``path`` (a run directory or a model file).

    Without ``data``, the rows of ``part`` of the run's recorded split are read again from the
    recorded source (unchanged bytes required): the test metrics equal ``summary.json``'s.
    With ``data``, every row of that labelled file is scored.
    """
    if part not in ("train", "val", "test"):
        raise InvalidValueError(f"--part must be train, val or test, got {part!r}")
    rm = load_run_model(path)
    if data is not None:
        table = rm.read(data, header=header, delimiter=delimiter, encoding=encoding,
                        need_target=True)
        y = rm.targets(table.y, str(data))
        return Evaluation(evaluate_rows(rm.model, rm.run, table.X, y), rm, f"{data} (all rows)")
    if not Path(path).is_dir():
        raise InvalidValueError(f"{path} is a model file without its run directory; give the "
                                f"run directory (with {SPLIT_NAME}) or --data FILE")
    X, y, label = recorded_rows(Path(path), part, rm.task)
    return Evaluation(evaluate_rows(rm.model, rm.run, X, y), rm, f"{part} part of {label}")


def recorded_rows(run_dir: Path, part: str, task: str) -> tuple[Any, Any, str]:
    """The raw rows and targets of ``part`` of a run's recorded split, read again from the
    recorded source (unchanged bytes required), encoded as training encoded them."""
    record, split = read_split(run_dir)
    table = replay(record)
    split.check_rows(len(table.X), run_dir)
    rows = split.part(part)
    _, y, _ = encode_targets(table, task)
    label = record["name"] if record["kind"] == "builtin" else record["path"]
    return rows_of(table.X, rows), y[rows], label
