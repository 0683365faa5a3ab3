"""`sarm eval --dataset --annotations`: demo MSE / Pearson / Spearman against the labels `sarm train`
builds, outcomes from the dataset's column, plots, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from sarm.cli import main
from sarm.data.writer import LeRobotWriter
from sarm.labels import StageSchema

T = 20
SPANS = (["reach", "grasp"], [0, 8], [7, 19])  # the same spans in every episode
OUTCOMES = ["success", "failure", "partial", None]
TASKS = ["pick", "pick", "place", "place"]


def _labels() -> np.ndarray:
    """Label progress of one episode, by hand: Eq. 1 proportions (8/20, 12/20) and Formula 2."""
    schema = StageSchema(names=["reach", "grasp"], proportions=[8 / T, 12 / T])
    spans = list(zip(*SPANS, strict=True))
    return schema.progress(schema.targets(spans, T, 0))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "ds"
    rng = np.random.default_rng(0)
    with LeRobotWriter(root, fps=10, state_dim=2, action_dim=2) as w:
        for task, outcome in zip(TASKS, OUTCOMES, strict=True):
            x = rng.normal(size=(T, 2))
            w.add_episode(state=x, action=x, task=task, annotations={"sparse": SPANS}, outcome=outcome)
    return root


def _progress(path, values: np.ndarray, episodes=(0, 1, 2, 3), length: int = T):
    n = len(episodes) * length
    table = pa.table(
        {
            "index": np.arange(n),
            "episode_index": np.repeat(np.asarray(episodes), length),
            "frame_index": np.tile(np.arange(length), len(episodes)),
            "progress_sparse": np.asarray(values, np.float32),
        }
    )
    pq.write_table(table, path)
    return str(path)


def _eval(*argv) -> dict:
    out = argv[argv.index("--json") + 1]
    assert main(["eval", *map(str, argv)]) == 0
    return json.loads(open(out).read())


def test_progress_equal_to_labels_gives_mse_0_and_pearson_1(dataset, tmp_path, capsys):
    labels = np.tile(_labels(), 4)
    path = _progress(tmp_path / "p.parquet", labels)
    r = _eval(path, "--dataset", dataset, "--annotations", dataset, "--json", tmp_path / "o.json")
    assert r["demo_mse"] == pytest.approx(0.0, abs=1e-12)
    assert r["pearson"] == pytest.approx(1.0) and r["spearman"] == pytest.approx(1.0)
    assert r["labels"]["episodes_compared"] == [0, 1, 2, 3] and r["label_frames"] == 4 * T
    assert r["per_task"]["pick"]["demo_mse"] == pytest.approx(0.0, abs=1e-12)
    out = capsys.readouterr().out
    assert "against labels" in out and "on 4 episodes" in out


def test_noisy_progress_matches_numpy_and_scipy(dataset, tmp_path):
    labels = np.tile(_labels(), 4)
    noisy = np.clip(labels + np.random.default_rng(1).normal(0, 0.1, labels.size), 0, 1).astype(np.float32)
    path = _progress(tmp_path / "p.parquet", noisy)
    r = _eval(path, "--dataset", dataset, "--annotations", dataset, "--json", tmp_path / "o.json")
    p = noisy.astype(np.float64)
    assert r["demo_mse"] == pytest.approx(np.mean((p - labels) ** 2))
    assert r["pearson"] == pytest.approx(stats.pearsonr(p, labels).statistic)
    assert r["spearman"] == pytest.approx(stats.spearmanr(p, labels).statistic)
    place = slice(2 * T, 4 * T)
    assert r["per_task"]["place"]["pearson"] == pytest.approx(
        stats.pearsonr(p[place], labels[place]).statistic
    )


def test_outcomes_come_from_the_dataset_column(dataset, tmp_path, capsys):
    sk = pytest.importorskip("sklearn.metrics")
    finals = np.array([0.9, 0.2, 0.5, 0.7])
    values = np.concatenate([np.linspace(0, f, T) for f in finals])
    path = _progress(tmp_path / "p.parquet", values)
    r = _eval(path, "--dataset", dataset, "--json", tmp_path / "o.json")
    f32 = finals.astype(np.float32)
    assert r["auroc"] == pytest.approx(sk.roc_auc_score([1, 0, 0], f32[:3]))
    assert r["paper_rho"] == pytest.approx(stats.spearmanr(f32[:3], [2, 0, 1]).statistic)
    assert r["demo_mse"] is None and r["voc"]["episodes"] == 1  # VOC on the one successful episode
    assert "outcome` column (3 episodes: 1 success, 1 partial, 1 failure)" in capsys.readouterr().out
    r = _eval(path, "--json", tmp_path / "o.json")  # no dataset: no outcomes
    assert r["auroc"] is None and r["outcomes_from"].startswith("none known")


def test_label_policies_change_what_is_compared(dataset, tmp_path):
    labels = np.tile(_labels(), 4)
    path = _progress(tmp_path / "p.parquet", labels)
    common = [path, "--dataset", dataset, "--annotations", dataset, "--json", tmp_path / "o.json"]
    r = _eval(*common, "--failures", "exclude")
    assert r["labels"]["episodes_compared"] == [0, 2, 3] and r["labels"]["excluded_failures"] == [1]
    r = _eval(*common, "--failures", "truncate")  # failed and partial episodes stop at their last stage
    assert r["demo_mse"] > 0 and r["labels"]["policy"]["failures"] == "truncate"


def test_plots_are_written(dataset, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    values = np.concatenate(
        [np.linspace(0, 1, T), np.linspace(1, 0, T), np.full(T, 0.5), np.linspace(0, 0.6, T)]
    )
    path = _progress(tmp_path / "p.parquet", values)
    plots = tmp_path / "plots"
    args = [
        path,
        "--dataset",
        dataset,
        "--annotations",
        dataset,
        "--plots",
        plots,
        "--json",
        tmp_path / "o.json",
    ]
    _eval(*args)
    names = ["final_progress.png", "voc_histogram.png", "worst_episodes.png"]
    assert sorted(p.name for p in plots.iterdir()) == names
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    assert f"wrote 3 plots to {plots}" in capsys.readouterr().out


def _error(capsys, *argv) -> str:
    assert main(["eval", *map(str, argv)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line and "read progress" not in line]
    assert len(err) == 1 and err[0].startswith("sarm eval: error: "), err  # one line, besides the bar
    return err[0]


def test_bad_input_gives_one_line_errors(dataset, tmp_path, capsys):
    good = _progress(tmp_path / "p.parquet", np.tile(_labels(), 4))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"10": [["reach", 0, 5]], "11": [["reach", 0, 5]]}))
    err = _error(capsys, good, "--dataset", dataset, "--annotations", unknown)
    assert "none of the 2 episode(s) with sparse spans [10, 11] is in the dataset" in err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"0": None}))
    assert "not a single span" in _error(capsys, good, "--dataset", dataset, "--annotations", empty)
    empty.write_text("{}")
    assert "holds no episode spans" in _error(capsys, good, "--dataset", dataset, "--annotations", empty)
    other = _progress(tmp_path / "q.parquet", np.zeros(2 * T), episodes=(0, 9))
    assert "episode(s) [9] that are not in the dataset" in _error(capsys, other, "--dataset", dataset)
    longer = _progress(tmp_path / "r.parquet", np.zeros(4 * (T + 1)), length=T + 1)
    assert f"frame_index {T} in episode 0, which has {T} frames" in _error(
        capsys, longer, "--dataset", dataset
    )
    assert "--annotations needs --dataset ROOT" in _error(capsys, good, "--annotations", dataset)


def test_a_dataset_without_spans_is_an_error(tmp_path, capsys):
    root = tmp_path / "bare"
    with LeRobotWriter(root, fps=10, state_dim=2, action_dim=2) as w:
        w.add_episode(state=np.zeros((T, 2)), action=np.zeros((T, 2)), task="pick")
    path = _progress(tmp_path / "p.parquet", np.linspace(0, 1, T), episodes=(0,))
    err = _error(capsys, path, "--dataset", root, "--annotations", root)
    assert "no SARM annotation columns for head 'sparse'" in err
    r = _eval(path, "--dataset", root, "--annotations", "none", "--json", tmp_path / "o.json")
    assert r["pearson"] == pytest.approx(1.0)  # single stage: linear labels
