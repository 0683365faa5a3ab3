"""`sarm progress --format {lerobot,scores,both}`: LeRobot's draft scores file beside today's progress file,
from the same parts: the same progress, typed outputs, provenance, shards and --merge, printed layouts."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

from rabc import RABCWeights, read_progress
from sarm.cli import main
from sarm.data import open_dataset
from sarm.features import FeatureCache
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from sarm.inference.progress import compute_progress
from tests.sarm.data.test_dataset import LENGTHS, make_v21
from tests.sarm.inference.test_progress import tiny

pytest.importorskip("av")
SCHEMAS = {"sparse": {"*": {"names": ["a", "b", "c"], "proportions": [0.2, 0.3, 0.5]}}}
SIGNALS = [f"reward.sarm.sparse.{s}" for s in ("progress", "stage_confidence", "valid")]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny dataset (3 episodes), its feature cache and a saved 3-stage model."""
    base = tmp_path_factory.mktemp("formats")
    root = make_v21(base / "ds")
    cache = extract_features(open_dataset(root), PixelEncoder(32), base / "cache", progress=False)
    model_dir = tiny(schemas=SCHEMAS).save_pretrained(base / "m")
    return root, cache, model_dir


def progress_cli(model_dir, cache, output, *extra) -> int:
    argv = ["progress", "--model", str(model_dir), "--cache", str(cache.root), "--output", str(output)]
    return main([*argv, *map(str, extra)])


def data_columns(path):
    return pq.read_table(path).replace_schema_metadata(None)


def test_both_files_hold_the_same_progress_and_the_scores_file_its_typed_outputs(pipeline, tmp_path, capsys):
    root, cache, model_dir = pipeline
    started = datetime.now(timezone.utc).replace(microsecond=0)
    out = tmp_path / "sarm_progress.parquet"
    assert progress_cli(model_dir, cache, out, "--format", "both", "--stage-probs", "--stride", "2") == 0
    scores = root / "scores" / "sarm.parquet"  # the draft's default place
    printed = capsys.readouterr().out
    assert (
        f"wrote {out} (LeRobot sarm_progress layout)" in printed
        and f"wrote {scores} (LeRobot scores" in printed
    )
    lerobot, typed = read_progress(out, extras=True), read_progress(scores, extras=True)
    assert (lerobot.format, typed.format) == ("lerobot", "scores")
    for field in ("index", "episode_index", "frame_index"):
        np.testing.assert_array_equal(getattr(typed, field), getattr(lerobot, field))
    np.testing.assert_array_equal(typed.column("sparse"), lerobot.column("sparse"))
    np.testing.assert_array_equal(typed.extras["stage_probs_sparse"], lerobot.extras["stage_probs_sparse"])
    np.testing.assert_allclose(typed.extras["confidence_sparse"], lerobot.extras["stage_probs_sparse"].max(1))
    assert typed.extras["valid_sparse"].all() and len(typed) == sum(LENGTHS)
    names = pq.read_schema(scores).names
    assert names[:3] == ["index", "episode_index", "frame_index"] and names[3:] == sorted(names[3:])
    assert set(SIGNALS) <= set(names) and sum("stage_probability" in n for n in names) == 3

    prov = typed.file_format.provenance
    weights = model_dir / "model.safetensors"
    assert prov["model"] == {
        "path": str(model_dir),
        "weights_file": str(weights.resolve()),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    assert prov["encoder"] == cache.manifest["encoder"] and prov["encoder"]["spec"] == "pixels:32"
    assert prov["dataset"]["fingerprint"] == open_dataset(root).fingerprint()
    assert prov["dataset"]["total_frames"] == sum(LENGTHS) and prov["dataset"]["total_episodes"] == 3
    assert prov["producer"]["package"] == "sarm-rabc" and "git_commit" in prov["producer"]
    assert prov["scoring"]["stride"] == 2 and prov["scoring"]["stages"] == {"sparse": {"*": ["a", "b", "c"]}}
    created = datetime.fromisoformat(prov["created"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["created"])
    assert started <= created <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_shards_write_the_scores_file_from_the_merged_parts(pipeline, tmp_path):
    _, cache, model_dir = pipeline
    one = tmp_path / "one" / "scores.parquet"
    assert (
        progress_cli(model_dir, cache, tmp_path / "one.parquet", "--format", "scores", "--scores-out", one)
        == 0
    )
    assert not (tmp_path / "one.parquet").exists()  # scores only: no LeRobot-layout file
    two = tmp_path / "two" / "scores.parquet"
    flags = ["--format", "scores", "--scores-out", str(two)]
    assert progress_cli(model_dir, cache, tmp_path / "two.parquet", "--shard", "0/2", *flags) == 0
    assert not two.exists()  # a shard alone writes parts only
    assert progress_cli(model_dir, cache, tmp_path / "two.parquet", "--shard", "1/2", *flags) == 0
    assert data_columns(two).equals(data_columns(one))  # the time stamp aside, the same file
    assert not (tmp_path / "two.parquet.parts").exists()


def test_merge_writes_both_files_from_finished_parts(pipeline, tmp_path, monkeypatch, capsys):
    import sarm.inference.progress as progress_module

    _, cache, model_dir = pipeline
    out, scores = tmp_path / "p.parquet", tmp_path / "s.parquet"
    monkeypatch.setattr(progress_module, "merge_progress", lambda *a, **k: None)  # parts only
    assert progress_cli(model_dir, cache, out) == 0  # a finished run whose merge did not happen
    monkeypatch.undo()
    assert not out.exists() and (tmp_path / "p.parquet.parts" / "provenance.json").is_file()
    capsys.readouterr()
    merge = ["progress", "--cache", str(cache.root), "--output", str(out), "--merge"]
    assert main([*merge, "--format", "both", "--scores-out", str(scores)]) == 0
    assert f"wrote {scores} (LeRobot scores file" in capsys.readouterr().out
    np.testing.assert_array_equal(read_progress(out).column("sparse"), read_progress(scores).column("sparse"))
    assert read_progress(scores).file_format.provenance["model"]["path"] == str(model_dir)


def test_runs_differ_only_in_the_time_stamp(pipeline, tmp_path):
    _, cache, model_dir = pipeline
    paths = []
    for run in ("a", "b"):
        scores = tmp_path / f"{run}.scores.parquet"
        assert progress_cli(model_dir, cache, tmp_path / f"{run}.parquet", "--format", "both",
                            "--scores-out", scores) == 0  # fmt: skip
        paths.append(scores)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert data_columns(paths[0]).equals(data_columns(paths[1]))
    a, b = (read_progress(p).file_format.provenance for p in paths)
    assert {k: v for k, v in a.items() if k != "created"} == {k: v for k, v in b.items() if k != "created"}


def test_episodes_without_features_are_marked_invalid(tmp_path):
    root = make_v21(tmp_path / "ds")
    extract_features(open_dataset(root), PixelEncoder(32), tmp_path / "cache", progress=False)
    os.remove(tmp_path / "cache" / "episodes" / "episode_000001.images.npy")  # planned, not finished
    with pytest.warns(UserWarning, match="no cached features"):
        compute_progress(tiny(), FeatureCache(tmp_path / "cache"), tmp_path / "p.parquet", progress=False,
                         formats=("scores",))  # fmt: skip
    raw = pq.read_table(root / "scores" / "sarm.parquet")
    episode = raw["episode_index"].to_numpy()
    np.testing.assert_array_equal(raw["reward.sarm.sparse.valid"].to_numpy(), episode != 1)
    table = read_progress(root / "scores" / "sarm.parquet")
    assert np.isnan(table.column("sparse")[episode == 1]).all() and table.file_format.masked == LENGTHS[1]
    weights = RABCWeights.from_progress(table, chunk_size=5)
    assert (weights.weights[episode == 1] == 1.0).all()  # RA-BC's explicit, counted fallback


def test_bad_scores_outputs_are_refused_before_any_compute(pipeline, tmp_path, capsys):
    _, cache, model_dir = pipeline
    (tmp_path / "d").mkdir()
    cases = [
        (tmp_path / "d", "--scores-out `" + str(tmp_path / "d") + "` is a directory"),
        (cache.root / "s.parquet", "would be written into the feature cache"),
        ("/proc/s.parquet", "cannot write --scores-out"),
    ]
    for target, message in cases:
        argv = ["--format", "scores", "--scores-out", str(target)]
        assert progress_cli(model_dir, cache, tmp_path / "p.parquet", *argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sarm progress: error:") and "\n" not in err and message in err, err
        assert not (tmp_path / "p.parquet.parts").exists()
    assert (
        progress_cli(model_dir, cache, tmp_path / "p.parquet", "--score-name", "a/b", "--format", "scores")
        == 2
    )
    assert "a score name should be a file name" in capsys.readouterr().err


def test_sarm_eval_explore_and_viz_read_the_scores_file(pipeline, tmp_path, capsys):
    root, cache, model_dir = pipeline
    scores = tmp_path / "scores" / "sarm.parquet"
    assert (
        progress_cli(model_dir, cache, tmp_path / "p.parquet", "--format", "scores", "--scores-out", scores)
        == 0
    )
    capsys.readouterr()
    assert main(["eval", str(scores), "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"read {scores}: LeRobot scores file (lerobot.scores v1, draft of LeRobot PRs")
    assert json.loads((tmp_path / "e.json").read_text())["num_episodes"] == 3
    from sarm.explore import Catalog

    catalog = Catalog(root, tmp_path, chunk_size=5)  # the directory holding scores/sarm.parquet
    assert catalog.progress_format == f"read {scores}: " + str(read_progress(scores).file_format)
    pytest.importorskip("matplotlib")
    assert main(["viz", str(scores), "--out", str(tmp_path / "viz"), "--episodes", "0,2"]) == 0
    assert sorted(p.name for p in (tmp_path / "viz").glob("*.png")) == [
        "episode_000000.png",
        "episode_000002.png",
    ]


def test_todays_file_is_unchanged_by_the_new_formats(pipeline, tmp_path, fixtures_dir):
    root, cache, model_dir = pipeline
    before = sorted((root / "scores").glob("*")) if (root / "scores").exists() else []
    assert progress_cli(model_dir, cache, tmp_path / "p.parquet") == 0  # default --format lerobot
    ours, theirs = (
        pq.read_schema(tmp_path / "p.parquet"),
        pq.read_schema(fixtures_dir / "sarm_progress.parquet"),
    )
    assert ours.names == theirs.names and [f.type for f in ours] == [f.type for f in theirs]
    assert set(ours.metadata) == {b"reward_model_path"}
    after = sorted((root / "scores").glob("*")) if (root / "scores").exists() else []
    assert after == before  # no scores file unless asked for
