"""`sarm demo`'s printout: the task it runs, the torch threads it uses, progress bars, the smoke notice."""

from __future__ import annotations

import pytest
import torch

from sarm.cli import main
from sarm.demo.config import SMOKE_NOTICE, DemoConfig, auto_threads, set_threads
from sarm.demo.protocol import DEFAULT_PROTOCOL


def test_protocol_printout_names_only_the_task_run():
    text = DEFAULT_PROTOCOL.describe(task="pick-place-v3")
    assert '  task: "pick-place-v3"' in text
    assert "assembly-v3" not in text and "shelf-place-v3" not in text and "tasks:" not in text
    assert "noisy_share: 0.5" in text  # the rest of the protocol is still there
    assert "assembly-v3" in DEFAULT_PROTOCOL.describe()  # the benchmark's printout keeps all three


def test_threads_are_set_and_reported(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == "torch threads: 1 (--threads 1)" and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setattr("os.cpu_count", lambda: 2)
        monkeypatch.setattr("os.getloadavg", lambda: (1.9, 1.0, 0.5))  # another job holds 2 cores
        line = set_threads(None)
        assert torch.get_num_threads() == 1
        assert line.startswith("torch threads: 1 (auto: load 1.9 on 2 cores, torch's default 2")
        torch.set_num_threads(2)
        monkeypatch.setattr("os.getloadavg", lambda: (0.05, 0.1, 0.1))  # idle: torch's own count
        assert set_threads(None).startswith("torch threads: 2 (auto: load 0.1 on 2 cores")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("default", "cores", "load", "expected"),
    [(2, 2, 0.0, 2), (2, 2, 0.6, 1), (2, 2, 0.4, 2), (2, 2, 5.0, 1), (8, 16, 4.0, 8), (16, 16, 4.2, 12)],
)
def test_auto_threads_uses_the_cores_the_load_leaves_free(default, cores, load, expected):
    assert auto_threads(default, cores, load) == expected


def test_threads_must_be_positive():
    with pytest.raises(ValueError, match="should be a positive integer value or None, but got threads=0"):
        DemoConfig(threads=0)
    with pytest.raises(ValueError, match="threads=True"):
        DemoConfig(threads=True)
    assert DemoConfig().threads is None and DemoConfig(threads=2).threads == 2


def test_label_policy_is_checked():
    assert (DemoConfig().mistakes, DemoConfig().failures) == ("hold", "exclude")
    with pytest.raises(ValueError, match=r"one of \('ignore', 'hold'\), but got mistakes='drop'"):
        DemoConfig(mistakes="drop")
    with pytest.raises(ValueError, match="failures='skip'"):
        DemoConfig(failures="skip")


def test_cli_label_flags_reach_the_config(tmp_path, monkeypatch):
    import sarm.demo.run as demo

    got = {}
    monkeypatch.setattr(demo, "run_demo", lambda out, config: got.setdefault("config", config))
    flags = ["--mistakes", "ignore", "--failures", "keep"]
    assert main(["demo", "--small", "--out", str(tmp_path / "d"), *flags]) == 0
    assert (got["config"].mistakes, got["config"].failures, got["config"].smoke) == ("ignore", "keep", True)
    got.clear()
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    assert (got["config"].mistakes, got["config"].failures) == ("hold", "exclude")


def test_cli_threads_flag_is_checked_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--threads", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sarm demo: error: --threads should be a positive integer, but got --threads 0" in err
    assert not out.exists()


def test_small_is_marked_as_a_smoke_run():
    assert DemoConfig.small().smoke and not DemoConfig().smoke
    assert "smoke run" in SMOKE_NOTICE and "not results" in SMOKE_NOTICE


def test_rollouts_show_a_progress_bar(capsys):
    pytest.importorskip("metaworld")
    from sarm.demo.policy import ChunkPolicy, evaluate

    result = evaluate(ChunkPolicy(), "pick-place-v3", rollouts=2, max_steps=3, progress_bar="bc")
    assert len(result["successes"]) == 2
    err = capsys.readouterr().err
    assert "rollouts bc" in err and "2/2" in err
    evaluate(ChunkPolicy(), "pick-place-v3", rollouts=1, max_steps=3)
    assert "rollouts" not in capsys.readouterr().err  # off by default (the benchmark's many rollouts)
