"""LeRobot's draft scores files (PRs #4553-#4555) read by `read_progress`, written by `write_scores`.

The files here are built by hand with pyarrow in the drafts' layout (keys, JSON descriptors, columns as
read from the PR branches), not with our writer, so the reader is checked against the layout itself.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rabc import RABCWeights, read_progress, write_progress
from rabc.cli import main
from rabc.score_files import lerobot_view, parse_signal, write_scores

DESCRIPTOR_NEW = {"description": "progress", "direction": "higher", "bounds": [0.0, 1.0], "unit": None}


def scores_table(columns: dict, *, prefix="lerobot.scores", descriptors=None, extra_meta=None, **meta):
    """A scores table in the drafts' layout: `columns` holds index/episode_index/frame_index + signals."""
    signals = sorted(c for c in columns if c not in ("index", "episode_index", "frame_index"))
    if descriptors is None:
        descriptors = {n: {**DESCRIPTOR_NEW, "allow_nan": True} for n in signals}
    metadata = {
        f"{prefix}.format": "lerobot.frame_signals",
        f"{prefix}.schema_version": "1",
        f"{prefix}.provenance": json.dumps({"lerobot_version": "0.7.0", "scoring": {"model": "x"}}),
        f"{prefix}.descriptors": json.dumps(descriptors),
        **meta,
        **(extra_meta or {}),
    }
    arrays = {c: columns[c] for c in ("index", "episode_index", "frame_index") if c in columns}
    arrays |= {n: columns[n] for n in signals}
    return pa.table(arrays).replace_schema_metadata(metadata)


def index_columns(lengths):
    index = np.arange(sum(lengths), dtype=np.int64)
    episode = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    frame = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    return {"index": index, "episode_index": episode, "frame_index": frame}


@pytest.fixture
def masked_fixture(fixtures_dir, tmp_path):
    """LeRobot's fixture progress as a scores file: its NaN frame becomes valid=False over a bogus 0.99."""
    t = pq.read_table(fixtures_dir / "sarm_progress.parquet")
    progress = t["progress_sparse"].to_numpy().copy()
    valid = np.isfinite(progress)
    progress[~valid] = 0.99  # must not be used: the mask says the frame was not scored
    cols = {c: t[c].to_numpy() for c in ("index", "episode_index", "frame_index")}
    cols |= {"reward.sarm.sparse.progress": progress.astype(np.float32), "reward.sarm.sparse.valid": valid}
    path = tmp_path / "scores" / "sarm.parquet"
    path.parent.mkdir()
    pq.write_table(scores_table(cols), path)
    return path


def test_validity_mask_gives_nan_and_lerobots_fallback_weights(masked_fixture, fixtures_dir):
    expected = json.loads((fixtures_dir / "rabc_weights.json").read_text())
    table = read_progress(masked_fixture)
    assert table.format == "scores" and table.file_format.masked == 1
    assert np.isnan(table.column("sparse")[17]) and np.isfinite(np.delete(table.column("sparse"), 17)).all()
    np.testing.assert_array_equal(table.extras["valid_sparse"], np.arange(125) != 17)
    w = RABCWeights.from_progress(table, chunk_size=5, kappa=0.05, epsilon=1e-6, fallback_weight=1.0)
    np.testing.assert_allclose(w.weights, expected["raw_weights"], atol=1e-6)  # LeRobot's own numbers
    assert w.delta_mean == pytest.approx(expected["delta_mean"], abs=1e-6)
    assert w.num_fallback == sum(d is None for d in expected["deltas"]) > 0


def test_the_earlier_key_generation_reads_the_same(masked_fixture, tmp_path):
    new = pq.read_table(masked_fixture)
    old_descriptors = {
        n: {**DESCRIPTOR_NEW, "comparison_scope": "task", "missing_values": "nan"}
        for n in new.column_names[3:]
    }
    cols = {c: new[c].to_numpy() for c in new.column_names}
    old = scores_table(
        cols,
        prefix="lerobot.reward_scoring",
        descriptors=old_descriptors,
        extra_meta={"lerobot.reward_scoring.episode_indices": "[0,1,2]"},
    )
    pq.write_table(old, tmp_path / "old.parquet")
    a, b = read_progress(masked_fixture), read_progress(tmp_path / "old.parquet")
    np.testing.assert_array_equal(a.column("sparse"), b.column("sparse"))
    assert (
        b.file_format.key_prefix == "lerobot.reward_scoring" and a.file_format.key_prefix == "lerobot.scores"
    )
    assert "an earlier draft" in b.format_line() and "an earlier" not in a.format_line()
    assert b.file_format.descriptors["reward.sarm.sparse.progress"]["missing_values"] == "nan"


def test_unknown_metadata_keys_and_signals_are_kept(tmp_path):
    cols = index_columns([4, 3]) | {
        "reward.robometer.progress": np.linspace(0, 1, 7, dtype=np.float32),
        "reward.robometer.success_probability": np.full(7, 0.5, np.float32),
    }
    meta = {"lerobot.scores.lineage": '{"parent": "abc"}', "my.own.key": "kept", "lerobot.scores.v9": "?"}
    pq.write_table(scores_table(cols, extra_meta=meta), tmp_path / "s.parquet")
    table = read_progress(tmp_path / "s.parquet")
    assert {k: table.metadata[k] for k in meta} == meta
    assert table.file_format.provenance == {"lerobot_version": "0.7.0", "scoring": {"model": "x"}}
    assert table.file_format.columns == {"sparse": "reward.robometer.progress"}
    assert table.heads == ["sparse"] and "valid_sparse" not in table.extras  # no mask: nothing masked


def test_a_newer_schema_version_is_read_with_a_warning(tmp_path, caplog):
    cols = index_columns([5]) | {"reward.m.progress": np.linspace(0, 1, 5, dtype=np.float32)}
    table = scores_table(cols)
    table = table.replace_schema_metadata({**table.schema.metadata, b"lerobot.scores.schema_version": b"2"})
    pq.write_table(table, tmp_path / "s.parquet")
    with caplog.at_level(logging.WARNING, logger="rabc.score_files"):
        t = read_progress(tmp_path / "s.parquet")
    assert t.file_format.version == 2 and "newer than the v1" in t.format_line()
    assert "schema v2, newer than the v1" in caplog.text


def test_write_then_read_round_trip(tmp_path):
    lengths = [6, 4]
    progress = np.r_[np.linspace(0, 1, 6), [np.nan] * 4].astype(np.float32)  # episode 1 not scored
    probs = np.tile(np.array([[0.7, 0.2, 0.1]], np.float32), (10, 1))
    probs[6:] = np.nan
    columns = index_columns(lengths) | {"progress_sparse": progress, "stage_probs_sparse": probs}
    episodes = [{k: v[:6] for k, v in columns.items()}, {k: v[6:] for k, v in columns.items()}]
    path = write_scores(
        tmp_path / "s.parquet", iter(episodes), model="m", num_stages={"sparse": 3}, provenance={"a": 1}
    )
    assert pq.ParquetFile(path).metadata.num_row_groups == 2  # one per episode, as the draft publishes
    table = read_progress(path, extras=True)
    np.testing.assert_array_equal(table.column("sparse"), progress)
    np.testing.assert_array_equal(table.extras["valid_sparse"], np.arange(10) < 6)
    np.testing.assert_allclose(table.extras["stage_probs_sparse"], probs)
    np.testing.assert_allclose(table.extras["confidence_sparse"][:6], 0.7)
    assert table.file_format.provenance == {"a": 1} and table.file_format.masked == 4
    descriptors = table.file_format.descriptors
    assert all(
        set(d) == {"description", "direction", "bounds", "unit", "allow_nan"} for d in descriptors.values()
    )
    assert descriptors["reward.m.sparse.valid"]["allow_nan"] is False
    view = lerobot_view(pq.read_table(path), str(path))
    assert view.column_names == [
        "index",
        "episode_index",
        "frame_index",
        "progress_sparse",
        "stage_probs_sparse",
    ]
    np.testing.assert_array_equal(view["progress_sparse"].to_numpy(zero_copy_only=False), progress)


def test_a_table_read_from_scores_writes_todays_layout_without_the_scores_keys(masked_fixture, tmp_path):
    out = write_progress(tmp_path / "p.parquet", read_progress(masked_fixture))
    table = read_progress(out)
    assert table.format == "lerobot" and not any(k.startswith("lerobot.scores") for k in table.metadata)
    assert np.isnan(table.column("sparse")[17])


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("reward.sarm.dense.stage_probability.2", ("reward.sarm", "dense", "stage_probability", 2)),
        ("reward.robometer.progress", ("reward.robometer", "sparse", "progress", None)),
        ("progress_dense", (None, "dense", "progress", None)),
        ("reward.x.valid_mask_sparse", ("reward.x", "sparse", "valid", None)),
        ("reward.rynnvalue.is_inference_frame", None),
        ("reward.topreward.log_probability", None),
        ("reward.x.sparse.progress_dense", None),  # contradicting heads
        ("reward.x.progress.3", None),  # a stage index on a scalar role
    ],
)
def test_signal_names_map_to_our_fields(name, parsed):
    assert parse_signal(name) == parsed


def _write(tmp_path, table, name="s.parquet"):
    pq.write_table(table, tmp_path / name)
    return tmp_path / name


def test_wrong_files_are_clear_errors(tmp_path):
    base = index_columns([5])
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really a parquet file")
    with pytest.raises(ValueError, match=r"`.*bad\.parquet` is not a readable parquet file.*regenerate"):
        read_progress(tmp_path / "bad.parquet")
    log_prob = _write(tmp_path, scores_table(base | {"reward.topreward.log_probability": np.zeros(5)}))
    with pytest.raises(ValueError, match=r"without a progress signal; its signals: \['reward\.topreward"):
        read_progress(log_prob)
    two = scores_table(base | {"reward.a.progress": np.zeros(5), "reward.b.progress": np.zeros(5)})
    with pytest.raises(
        ValueError, match=r"2 progress signals for the sparse head.*one model's score per file"
    ):
        read_progress(_write(tmp_path, two))
    one = scores_table(base | {"reward.a.progress": np.zeros(5, np.float32)})
    with pytest.raises(
        ValueError, match=r"no progress signal for the dense head.*--head dense --format scores"
    ):
        read_progress(_write(tmp_path, one), heads=["dense"])
    meta = dict(one.schema.metadata)
    cases = {
        b"lerobot.scores.format": (b"lerobot.other", "declares lerobot.scores.format = 'lerobot.other'"),
        b"lerobot.scores.schema_version": (b"one", "schema_version = 'one', not an integer"),
        b"lerobot.scores.descriptors": (
            b"{not json",
            "metadata `lerobot.scores.descriptors` of .* not valid JSON",
        ),
    }
    for key, (value, message) in cases.items():
        path = _write(tmp_path, one.replace_schema_metadata({**meta, key: value}), "m.parquet")
        with pytest.raises(ValueError, match=message) as info:
            read_progress(path)
        assert "m.parquet" in str(info.value)
    no_frames = scores_table({"index": base["index"], "reward.a.progress": np.zeros(5)})
    with pytest.raises(ValueError, match=r"without the column\(s\) \['episode_index', 'frame_index'\]"):
        read_progress(_write(tmp_path, no_frames))
    bad_mask = scores_table(base | {"reward.a.progress": np.zeros(5), "reward.a.valid": np.zeros(5)})
    with pytest.raises(ValueError, match=r"validity mask `reward\.a\.valid` .* should hold booleans"):
        read_progress(_write(tmp_path, bad_mask))


def test_a_directory_is_read_when_it_holds_one_progress_file(tmp_path, masked_fixture, fixtures_dir):
    root = masked_fixture.parent.parent  # tmp_path, holding scores/sarm.parquet only
    assert read_progress(root).source == str(masked_fixture)
    assert read_progress(root / "scores").source == str(masked_fixture)
    (root / "sarm_progress.parquet").write_bytes((fixtures_dir / "sarm_progress.parquet").read_bytes())
    with pytest.raises(ValueError, match=r"holds 2 progress files: .*sarm_progress\.parquet.*sarm\.parquet"):
        read_progress(root)
    assert read_progress(root, score="sarm").format == "scores"
    with pytest.raises(FileNotFoundError, match="score `other` not found"):
        read_progress(root, score="other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="directory without a progress file"):
        read_progress(tmp_path / "empty")


def test_rabc_commands_print_the_layout_they_read(masked_fixture, fixtures_dir, tmp_path, capsys):
    out = tmp_path / "w.parquet"
    assert main(["weights", str(masked_fixture), "--chunk-size", "5", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert (
        f"read {masked_fixture}: LeRobot scores file (lerobot.scores v1, draft of LeRobot PRs #4553-#4555"
        in err
    )
    assert "1 frame(s) marked invalid -> NaN progress" in err
    assert main(["episodes", str(fixtures_dir / "sarm_progress.parquet"), "--chunk-size", "5"]) == 0
    captured = capsys.readouterr()
    assert "LeRobot sarm_progress layout (progress_sparse)" in captured.err
    assert "LeRobot sarm_progress" not in captured.out  # stdout keeps only the table
