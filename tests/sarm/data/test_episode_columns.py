"""sarm.data.episode_columns: rows found by episode_index in any file, other values kept, backup, refusals."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm.data.episode_columns import write_episode_columns
from sarm.data.errors import DatasetError

NAMES = pa.list_(pa.string())


def episodes_dataset(root: Path) -> Path:
    """Two episodes files, as LeRobot splits meta/episodes: episodes 0-1 in file-000, 2-4 in file-001."""
    folder = root / "meta" / "episodes" / "chunk-000"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"episode_index": [0, 1], "length": [10, 11]}), folder / "file-000.parquet")
    table = pa.table({"episode_index": [2, 3, 4], "length": [12, 13, 14], "note": [["x"], None, ["z"]]})
    pq.write_table(table, folder / "file-001.parquet")
    return root


def read(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / "meta/episodes/chunk-000" / name).to_pylist()


def test_rows_are_found_by_episode_index_in_every_file_and_other_values_are_kept(tmp_path):
    root = episodes_dataset(tmp_path)
    # episode 3 is row 1 of file-001: LeRobot's `file_df.at[ep_idx, col]` would write row 3 instead
    written = write_episode_columns(
        root, {3: {"note": ["new"]}, 0: {"tag": ["a", "b"]}}, {"note": NAMES, "tag": NAMES}
    )
    assert [p.name for p in written.files] == ["file-000.parquet", "file-001.parquet"]
    assert read(root, "file-001.parquet") == [
        {"episode_index": 2, "length": 12, "note": ["x"]},
        {"episode_index": 3, "length": 13, "note": ["new"]},
        {"episode_index": 4, "length": 14, "note": ["z"]},
    ]
    assert read(root, "file-000.parquet") == [
        {"episode_index": 0, "length": 10, "tag": ["a", "b"]},
        {"episode_index": 1, "length": 11, "tag": None},
    ]


def test_the_originals_are_copied_to_a_backup_before_anything_is_replaced(tmp_path):
    root = episodes_dataset(tmp_path)
    before = (root / "meta/episodes/chunk-000/file-001.parquet").read_bytes()
    written = write_episode_columns(root, {4: {"note": None}}, {"note": NAMES})
    assert written.files == [root / "meta/episodes/chunk-000/file-001.parquet"]
    assert written.backup.parent == root / "meta" / "backup"
    assert (written.backup / "chunk-000/file-001.parquet").read_bytes() == before
    assert not (written.backup / "chunk-000/file-000.parquet").exists()  # untouched files are not copied
    assert read(root, "file-001.parquet")[2]["note"] is None
    again = write_episode_columns(root, {4: {"note": ["w"]}}, {"note": NAMES})
    assert again.backup != written.backup and again.backup.is_dir()  # a second backup never overwrites


def test_an_episode_in_no_file_is_refused_before_anything_is_written(tmp_path):
    root = episodes_dataset(tmp_path)
    before = {p: p.read_bytes() for p in (root / "meta/episodes").rglob("*.parquet")}
    with pytest.raises(DatasetError, match=r"episodes \[9\] are in no `meta/episodes` file"):
        write_episode_columns(root, {0: {"tag": ["a"]}, 9: {"tag": ["b"]}}, {"tag": NAMES})
    assert {p: p.read_bytes() for p in before} == before and not (root / "meta/backup").exists()


def test_a_file_changed_on_disk_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    root = episodes_dataset(tmp_path)
    target = root / "meta/episodes/chunk-000/file-000.parquet"
    real = pq.write_table

    def write_and_meddle(table, where, *args, **kwargs):  # another program rewrites the file meanwhile
        real(pa.table({"episode_index": [0, 1], "length": [10, 99]}), target)
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_and_meddle)
    with pytest.raises(DatasetError, match="changed on disk"):
        write_episode_columns(root, {0: {"tag": ["a"]}}, {"tag": NAMES})
    assert read(root, "file-000.parquet")[1]["length"] == 99  # the other program's version stays
    assert not list((root / "meta/episodes").rglob("*.tmp"))


def test_a_dataset_without_episodes_files_and_untyped_columns_are_errors(tmp_path):
    with pytest.raises(DatasetError, match="no `meta/episodes/"):
        write_episode_columns(tmp_path, {0: {"tag": ["a"]}}, {"tag": NAMES})
    with pytest.raises(ValueError, match=r"columns \['tag'\] have no arrow type"):
        write_episode_columns(episodes_dataset(tmp_path / "d"), {0: {"tag": ["a"]}}, {})
