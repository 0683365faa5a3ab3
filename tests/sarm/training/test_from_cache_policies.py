"""prepare_training's mistake and failure policies, and `sarm train --mistakes / --failures / --outcomes`:
targets, exclusion, errors for policies without records, and a resume with other policies refused."""

import json

import numpy as np
import pytest

from sarm.cli import main
from tests.sarm.training.test_from_cache import TINY, build_cache, make_v21, rows_of, single_task
from tests.sarm.training.test_from_cache_labels import CLI_TINY

pytest.importorskip("av")

SPANS = {
    0: [("reach", 0, 9), ("grasp", 10, 19)],
    1: [("reach", 0, 11), ("grasp", 12, 24)],
    2: [("reach", 0, 14), ("grasp", 15, 29)],
}
MISTAKES = {1: [("pause", 3, 7)]}
OUTCOMES = {0: "success", 1: "success", 2: "failure"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Three episodes of one task, 20, 25 and 30 frames."""
    tmp = tmp_path_factory.mktemp("policies")
    return build_cache(single_task(make_v21(tmp / "ds")), tmp / "cache")


def _prepare(cache, **kwargs):
    from sarm.training.from_cache import prepare_training

    return prepare_training(cache, annotations={"sparse": SPANS}, model_overrides=TINY, **kwargs)


def test_targets_follow_the_policies(cache):
    plain = _prepare(cache)
    data = _prepare(cache, mistakes="hold", failures="truncate", mistake_spans=MISTAKES, outcomes=OUTCOMES)
    y, y0 = data.train_set.targets["sparse"], plain.train_set.targets["sparse"]
    np.testing.assert_array_equal(y[rows_of(cache, 0)], y0[rows_of(cache, 0)])  # no mistake, a success
    ep1 = y[rows_of(cache, 1)]
    assert np.all(ep1[3:8] == ep1[2]) and np.all(np.diff(ep1) >= 0)  # held in the pause, then resumed
    assert not np.array_equal(ep1, y0[rows_of(cache, 1)])
    ep2 = y[rows_of(cache, 2)]
    np.testing.assert_array_equal(ep2[15:], 1.0)  # the failed episode's unfinished "grasp" stays at its start
    np.testing.assert_array_equal(ep2[:15], y0[rows_of(cache, 2)][:15])
    assert data.report["label_policy"] == {"order": "error", "mistakes": "hold", "failures": "truncate"}
    assert data.report["mistake_episodes"] == [1] and data.report["excluded_failures"] == []


def test_exclude_leaves_failed_episodes_out(cache):
    data = _prepare(cache, failures="exclude", outcomes={**OUTCOMES, 1: "partial"}, eval_fraction=0.5)
    assert data.report["excluded_failures"] == [2]
    assert 2 not in data.report["train_episodes"] + data.report["eval_episodes"]
    assert 1 in data.report["train_episodes"] + data.report["eval_episodes"]  # partial stays


def test_policies_without_records_are_errors(cache):
    with pytest.raises(ValueError, match=r"mistakes='hold' \(--mistakes hold\) needs mistake spans"):
        _prepare(cache, mistakes="hold")
    with pytest.raises(
        ValueError, match=r"failures='truncate' \(--failures truncate\) needs episode outcomes"
    ):
        _prepare(cache, failures="truncate", outcomes={0: None})
    with pytest.raises(ValueError, match=r"failures should be one of \['keep', 'truncate', 'exclude'\]"):
        _prepare(cache, failures="drop")


def test_train_flags_and_resume_with_other_policies(cache, tmp_path, capsys):
    spans = tmp_path / "spans.json"
    spans.write_text(
        json.dumps(
            {
                str(e): {"spans": [list(s) for s in v], "mistakes": [list(m) for m in MISTAKES.get(e, [])]}
                for e, v in SPANS.items()
            }
        )
    )
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"0": True, "1": True, "2": False}))
    args = [
        "train",
        "--cache",
        str(cache.root),
        "--annotations",
        str(spans),
        "--steps",
        "1",
        "--batch-size",
        "2",
    ]
    args += ["--device", "cpu", *CLI_TINY, "--out", str(tmp_path / "run")]
    assert main([*args, "--mistakes", "hold", "--failures", "truncate", "--outcomes", str(outcomes)]) == 0
    out = capsys.readouterr().out
    assert '"mistakes": "hold"' in out and "trained to step 1" in out
    # a resume with other label policies is refused, in the command line's terms
    assert main([*args, "--failures", "truncate", "--outcomes", str(outcomes)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("sarm train: error: the run in")
        and "label policies (--order, --mistakes, --failures)" in err
    )
    assert "\n" not in err
    # flags without the records they need: one-line errors
    assert main([*args[:-1], str(tmp_path / "b"), "--failures", "exclude"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "--failures exclude found no episode outcome" in err and "--outcomes FILE" in err and "\n" not in err
    )
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({str(e): [list(s) for s in v] for e, v in SPANS.items()}))
    bad = [a if a != str(spans) else str(plain) for a in args[:-1]]
    assert main([*bad, str(tmp_path / "c"), "--mistakes", "hold"]) == 2
    assert "--mistakes hold found no mistake span" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*bad, str(tmp_path / "d"), "--mistakes", "skip"])
    assert "invalid choice: 'skip'" in capsys.readouterr().err
