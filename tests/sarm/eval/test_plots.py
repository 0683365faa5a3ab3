"""`sarm.eval.plots.write_plots`: three readable PNGs, with or without outcomes and labels."""

from __future__ import annotations

import numpy as np
import pytest

from sarm.eval import evaluate
from sarm.eval.plots import write_plots
from tests.sarm.eval.test_report import SUCCESS, _table

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("success", [None, SUCCESS])
def test_three_pngs_are_written_atomically(tmp_path, success):
    pytest.importorskip("matplotlib")
    table = _table()
    labels = np.concatenate([np.linspace(0, 1, 30)] * 4)
    report = evaluate(table, success=success, labels=labels)
    paths = write_plots(table, "sparse", report, tmp_path / "plots", success=success, labels=labels)
    assert [p.name for p in paths] == ["voc_histogram.png", "final_progress.png", "worst_episodes.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)  # no temp
