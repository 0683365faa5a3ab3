"""`rabc.advantages` and `rabc advantages`: returns-to-go, chunk advantages and labels, on hand-built
episodes whose answers are computed by hand (or by the textbook recursion G_t = r_t + gamma G_{t+1})."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rabc.advantages import COLUMNS, discounted_returns, progress_advantages
from rabc.cli import main
from tests.conftest import progress_table

A = [0.0, 0.2, 0.5, 0.5, 1.0]
B = [0.0, 0.1, 0.1, 0.3]


def test_undiscounted_return_to_go_is_final_minus_current_progress():
    adv = progress_advantages(progress_table([A, B]), 2)
    np.testing.assert_allclose(adv.return_to_go, [1.0, 0.8, 0.5, 0.5, 0.0, 0.3, 0.2, 0.2, 0.0], atol=1e-7)
    assert adv.return_to_go.dtype == np.float32


def test_discounted_return_to_go_by_hand():
    # A: r = .2 .3 0 .5 0; gamma .5: G4 = 0, G3 = .5, G2 = .25, G1 = .3 + .125, G0 = .2 + .2125
    adv = progress_advantages(progress_table([A]), 2, gamma=0.5)
    np.testing.assert_allclose(adv.return_to_go, [0.4125, 0.425, 0.25, 0.5, 0.0], atol=1e-7)


@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.9, 0.5])
def test_the_doubling_scan_equals_the_recursion(gamma):
    rng = np.random.default_rng(0)
    lengths = [1, 2, 3, 7, 64, 65, 300]
    rewards = rng.normal(size=sum(lengths))
    ends = np.repeat(np.cumsum(lengths), lengths)
    expected = np.zeros_like(rewards)
    for end, n in zip(np.cumsum(lengths), lengths, strict=True):
        g = 0.0
        for t in range(end - 1, end - n - 1, -1):
            g = rewards[t] + gamma * g
            expected[t] = g
    np.testing.assert_allclose(discounted_returns(rewards, ends, gamma), expected, rtol=1e-10, atol=1e-12)


def test_advantages_are_chunk_deltas_minus_the_task_mean():
    # chunk 2, clamped at the last frame: A deltas .5 .3 .5 .5 0 (mean .36); B .1 .2 .2 0 (mean .125)
    adv = progress_advantages(progress_table([A, B]), 2, tasks={0: "a", 1: "b"})
    expected = [0.14, -0.06, 0.14, 0.14, -0.36, -0.025, 0.075, 0.075, -0.125]
    np.testing.assert_allclose(adv.advantage, expected, atol=1e-6)
    assert adv.info["groups"]["a"]["baseline"] == pytest.approx(0.36)
    assert adv.info["groups"]["b"]["baseline"] == pytest.approx(0.125)
    none = progress_advantages(progress_table([A, B]), 2, baseline="none")
    np.testing.assert_allclose(none.advantage, [0.5, 0.3, 0.5, 0.5, 0.0, 0.1, 0.2, 0.2, 0.0], atol=1e-6)
    one = progress_advantages(progress_table([A, B]), 2)  # no tasks: one group, the mean of all 9
    np.testing.assert_allclose(one.advantage, np.array(none.advantage) - 2.3 / 9, atol=1e-6)


def test_labels_are_above_the_groups_quantile():
    # task a: advantages -.36 -.06 .14 .14 .14; np.quantile at .3 interpolates -.06 + .2 * .2 = -.02
    adv = progress_advantages(progress_table([A, B]), 2, tasks={0: "a", 1: "b"}, quantile=0.3)
    assert adv.info["groups"]["a"]["threshold"] == pytest.approx(-0.02)
    assert adv.advantage_label[:5].tolist() == [True, False, True, True, False]
    # task b: -.125 -.025 .075 .075 -> at .3: -.125 + .9 * .1 = -.035
    assert adv.advantage_label[5:].tolist() == [True, True, True, False]
    assert adv.info["groups"]["b"]["positive"] == 3


def test_unknown_progress_gives_nan_and_no_label():
    episode = [0.0, 0.2, np.nan, 0.6, 1.0]
    adv = progress_advantages(progress_table([episode]), 1, baseline="none")
    assert np.isnan(adv.return_to_go[:3]).all() and adv.return_to_go[3:] == pytest.approx([0.4, 0.0])
    assert adv.labelled.tolist() == [True, False, False, True, True]  # deltas 1->2 and 2->3 are unknown
    assert np.isnan(adv.advantage[1:3]).all()


def test_a_frame_absent_from_the_file_is_unknown_not_skipped():
    table = progress_table([A]).filter(pa.array([True, True, False, True, True]))  # frame 2 is absent
    adv = progress_advantages(table, 1, baseline="none")
    assert np.isnan(adv.return_to_go[:2]).all()  # r_1 would need frame 2
    assert adv.return_to_go[2:].tolist() == pytest.approx([0.5, 0.0])


def test_stage_baseline_uses_the_predicted_stage():
    table = progress_table([A, B])
    probs = [[1.0, 0.0]] * 3 + [[0.2, 0.8]] * 2 + [[0.9, 0.1]] * 2 + [[0.0, 1.0]] * 2
    table = table.append_column("stage_probs_sparse", pa.array(probs, pa.list_(pa.float32())))
    adv = progress_advantages(table, 2, baseline="stage")
    # stage 0: rows 0 1 2 5 6 (deltas .5 .3 .5 .1 .2, mean .32); stage 1: rows 3 4 7 8 (.5 0 .2 0, mean .175)
    assert adv.info["groups"]["stage 0"]["baseline"] == pytest.approx(0.32)
    assert adv.info["groups"]["stage 1"]["baseline"] == pytest.approx(0.175)
    assert adv.advantage[3] == pytest.approx(0.5 - 0.175)


def test_stage_baseline_without_stage_probabilities_says_how_to_get_them():
    with pytest.raises(
        ValueError, match=r"no `stage_probs_sparse` column: write them with `sarm progress --stage-probs`"
    ):
        progress_advantages(progress_table([A]), 2, baseline="stage")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 0.0}, r"gamma should be in \(0, 1\], but got gamma=0.0"),
        ({"gamma": 1.5}, r"gamma should be in \(0, 1\]"),
        ({"quantile": 1.0}, r"quantile should be in \(0, 1\)"),
        ({"baseline": "episode"}, r"baseline should be one of \['task', 'stage', 'none'\]"),
        ({"tasks": {0: "a"}}, r"groups has no entry for episode\(s\) \[1\]"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        progress_advantages(progress_table([A, B]), 2, **kwargs)


def test_cli_writes_the_columns_with_null_labels_for_unknown_progress(tmp_path, capsys):
    source = tmp_path / "sarm_progress.parquet"
    pq.write_table(progress_table([A, [0.0, np.nan, 0.4, 1.0]]), source)
    (tmp_path / "tasks.json").write_text(json.dumps({"0": "pick", "1": "pick"}))
    out = tmp_path / "adv.parquet"
    argv = [
        "advantages",
        str(source),
        "--chunk-size",
        "2",
        "--gamma",
        "0.5",
        "--tasks",
        str(tmp_path / "tasks.json"),
    ]
    assert main([*argv, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (9 frames)" in printed.splitlines()[-1]
    # episode 1's chunk deltas: .4, unknown (frame 1 has no progress), .6, 0
    assert "pick: 8 frames" in printed and "1 frame(s) have unknown progress" in printed
    table = pq.read_table(out)
    assert table.column_names == list(COLUMNS)
    assert table.column("advantage_label").null_count == 1
    assert table.column("return_to_go").to_pylist()[:5] == pytest.approx([0.4125, 0.425, 0.25, 0.5, 0.0])
    info = json.loads(table.schema.metadata[b"rabc.advantages"])
    assert info["gamma"] == 0.5 and info["chunk_size"] == 2 and info["baseline"] == "task"


def test_cli_errors_are_one_line(tmp_path, capsys):
    source = tmp_path / "sarm_progress.parquet"
    pq.write_table(progress_table([A]), source)
    assert (
        main(
            [
                "advantages",
                str(source),
                "--chunk-size",
                "2",
                "--gamma",
                "2",
                "-o",
                str(tmp_path / "a.parquet"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "rabc advantages: error: gamma should be in (0, 1], but got gamma=2.0"
    )
    assert main(["advantages", str(source), "--chunk-size", "2", "-o", str(tmp_path / "a.csv")]) == 2
    assert "write a .parquet file" in capsys.readouterr().err
    assert not (tmp_path / "a.parquet").exists()
