"""sarm.data.edit.write_episode_columns: episode columns written atomically, backed up, refused when stale;
and LeRobotWriter's mistake and outcome columns."""

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from sarm.data import DatasetError, open_dataset
from sarm.data.edit import StaleEpisodesError, episodes_token, write_episode_columns
from sarm.data.writer import LeRobotWriter
from sarm.labels.annotations import read_lerobot_annotations
from sarm.labels.records import episode_columns, read_mistakes, read_outcomes

EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _dataset(root, lengths=(20, 30, 25)):
    with LeRobotWriter(root, fps=10, state_dim=2, action_dim=2) as writer:
        for ep, n in enumerate(lengths):
            writer.add_episode(
                state=np.zeros((n, 2)),
                action=np.zeros((n, 2)),
                task="pick",
                annotations={"sparse": (["reach", "grasp"], [0, 10], [9, n - 1])} if ep != 1 else None,
                mistakes=[("pause", 3, 6)] if ep == 0 else None,
                outcome=[True, None, "partial"][ep],
            )
    return root


def test_the_writer_stores_mistakes_and_outcomes_that_the_readers_find(tmp_path):
    root = _dataset(tmp_path / "ds")
    assert read_mistakes(root) == {0: [("pause", 3, 6)]}
    assert read_outcomes(root) == {0: "success", 2: "partial"}
    assert open_dataset(root).num_episodes == 3  # the extra columns do not disturb the reader
    with pytest.raises(ValueError, match=r"mistake \('p', 18, 40\) in episode 0 lies outside"):
        with LeRobotWriter(tmp_path / "bad", fps=10, state_dim=1, action_dim=1) as writer:
            writer.add_episode(
                state=np.zeros((20, 1)), action=np.zeros((20, 1)), task="t", mistakes=[("p", 18, 40)]
            )


def test_write_episode_columns_round_trip_with_a_backup(tmp_path):
    root = _dataset(tmp_path / "ds")
    before = pq.read_table(root / EPISODES)
    token = episodes_token(root)
    cols = episode_columns(
        spans={"sparse": {1: [("reach", 0, 14), ("grasp", 15, 29)]}},
        mistakes={1: [("drop", 20, 24)]},
        outcomes={1: "failure", 0: None},
        fps=10,
    )
    cols["reviewer"] = {2: "ana"}  # any column, not only annotations
    new = write_episode_columns(root, cols, token=token).token
    assert new == episodes_token(root) and new != token
    assert read_lerobot_annotations(root)[1] == [("reach", 0, 14), ("grasp", 15, 29)]
    assert read_lerobot_annotations(root)[0] == [("reach", 0, 9), ("grasp", 10, 19)]  # untouched
    assert read_mistakes(root) == {0: [("pause", 3, 6)], 1: [("drop", 20, 24)]}
    assert read_outcomes(root) == {1: "failure", 2: "partial"}  # episode 0 cleared to unknown
    table = pq.read_table(root / EPISODES)
    assert table.column("reviewer").to_pylist() == [None, None, "ana"]
    assert table.column("sparse_subtask_end_times").to_pylist()[1] == [1.4, 2.9]
    for name in before.column_names:  # every other column is kept as it was
        if name not in cols:
            assert table.column(name).equals(before.column(name)), name
    (backup,) = (root / "meta" / "backups").glob("episodes-*/chunk-000/file-000.parquet")
    assert pq.read_table(backup).equals(before)
    assert not list((root / "meta" / "episodes").rglob(".*"))  # no temporary file left


def test_a_file_changed_since_it_was_read_is_refused_and_nothing_is_written(tmp_path):
    root = _dataset(tmp_path / "ds")
    token = episodes_token(root)
    write_episode_columns(root, {"outcome": {0: "failure"}})  # another editor writes in between
    snapshot = (root / EPISODES).read_bytes()
    with pytest.raises(StaleEpisodesError, match=r"file-000.parquet` changed .* since the dataset was read"):
        write_episode_columns(root, {"outcome": {1: "success"}}, token=token)
    assert (root / EPISODES).read_bytes() == snapshot
    # same size and content, other mtime: still refused (the token carries the mtime and the hash)
    token = episodes_token(root)
    os.utime(root / EPISODES, ns=(1, 1))
    with pytest.raises(StaleEpisodesError, match="modified or rewritten"):
        write_episode_columns(root, {"outcome": {1: "success"}}, token=token)


def test_bad_datasets_and_columns_are_refused(tmp_path):
    root = _dataset(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"episodes \[7\] are not in"):
        write_episode_columns(root, {"outcome": {7: "success"}})
    with pytest.raises(ValueError, match=r"\['length', 'stats/x/mean'\] locate the dataset's data"):
        write_episode_columns(root, {"length": {0: 3}, "stats/x/mean": {0: 1.0}})
    with pytest.raises(ValueError, match=r"`mistake_start_frames` do not fit its type"):
        write_episode_columns(root, {"mistake_start_frames": {0: ["x"]}})
    (root / EPISODES).write_bytes(b"damaged")
    with pytest.raises(DatasetError, match=r"file-000.parquet` is not a readable parquet file"):
        write_episode_columns(root, {"outcome": {0: "success"}})
    info = json.loads((root / "meta" / "info.json").read_text())
    (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match=r"codebase 'v2.1'; writing episode columns needs v3.0"):
        episodes_token(root)


def _split_dataset(root):
    """A v3.0 layout with two episodes files, as LeRobot splits meta/episodes: 0-1 in file-000, 2-4 in
    file-001."""
    import pyarrow as pa

    folder = root / "meta" / "episodes" / "chunk-000"
    folder.mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0"}))
    pq.write_table(pa.table({"episode_index": [0, 1], "length": [10, 11]}), folder / "file-000.parquet")
    table = pa.table({"episode_index": [2, 3, 4], "length": [12, 13, 14], "note": [["x"], None, ["z"]]})
    pq.write_table(table, folder / "file-001.parquet")
    return root


def test_rows_are_found_by_episode_index_in_every_file_and_other_values_are_kept(tmp_path):
    root = _split_dataset(tmp_path)
    # episode 3 is row 1 of file-001: LeRobot's `file_df.at[ep_idx, col]` would write row 3 instead
    written = write_episode_columns(root, {"note": {3: ["new"]}, "tag": {0: ["a", "b"]}})
    assert [p.name for p in written.files] == ["file-000.parquet", "file-001.parquet"]
    assert pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet").to_pylist() == [
        {"episode_index": 2, "length": 12, "note": ["x"], "tag": None},
        {"episode_index": 3, "length": 13, "note": ["new"], "tag": None},
        {"episode_index": 4, "length": 14, "note": ["z"], "tag": None},
    ]  # every rewritten file gets every column written, so the files keep one schema
    assert pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist() == [
        {"episode_index": 0, "length": 10, "note": None, "tag": ["a", "b"]},
        {"episode_index": 1, "length": 11, "note": None, "tag": None},
    ]


def test_only_touched_files_are_backed_up_and_a_second_backup_never_overwrites_the_first(tmp_path):
    root = _split_dataset(tmp_path)
    before = (root / "meta/episodes/chunk-000/file-001.parquet").read_bytes()
    written = write_episode_columns(root, {"note": {4: None}})
    assert written.files == [root / "meta/episodes/chunk-000/file-001.parquet"]
    assert written.backup.parent == root / "meta" / "backups"
    assert (written.backup / "chunk-000/file-001.parquet").read_bytes() == before
    assert not (written.backup / "chunk-000/file-000.parquet").exists()
    again = write_episode_columns(root, {"note": {4: ["w"]}})  # within the same second, usually
    assert again.backup != written.backup and again.backup.is_dir()
    assert (written.backup / "chunk-000/file-001.parquet").read_bytes() == before
    assert write_episode_columns(root, {"note": {4: ["v"]}}, backup=False).backup is None
