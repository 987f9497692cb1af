"""Test accuracy reached by ``chainrule train`` with its documented default settings (seeded)."""

from __future__ import annotations

import pytest

from chainrule.runs import TrainConfig, train_run


@pytest.mark.parametrize(
    "dataset, options, minimum",
    [
        ("digits", {}, 0.97),
        ("breast_cancer", {}, 0.95),
        ("moons", {"noise": 0.2}, 0.95),
        ("spirals", {}, 0.95),
        ("mnist1d", {}, 0.68),
    ],
)
def test_default_settings_reach_documented_accuracy(dataset, options, minimum, tmp_path,
                                                    monkeypatch):
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path / "cache"))
    summary = train_run(TrainConfig(dataset=dataset, **options), tmp_path / dataset,
                        progress="none", plots=False)
    assert summary["test_accuracy"] >= minimum, summary
