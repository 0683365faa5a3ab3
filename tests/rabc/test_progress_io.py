import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rabc.progress_io import ProgressTable, read_progress, write_progress
from tests.conftest import progress_table


def test_reads_lerobot_fixture(fixtures_dir):
    t = read_progress(fixtures_dir / "sarm_progress.parquet")
    assert t.heads == ["sparse"]
    assert t.index.dtype == np.int64 and t.episode_index.dtype == np.int64 and t.frame_index.dtype == np.int64
    assert t.progress["sparse"].dtype == np.float32
    assert len(t) == 125 and np.isnan(t.progress["sparse"]).sum() == 1
    assert t.metadata == {"reward_model_path": "fixture"}
    episodes, starts, ends = t.episode_runs()
    assert episodes.tolist() == [0, 1, 2] and (ends - starts).tolist() == [40, 25, 60]


def test_roundtrip_keeps_schema_and_values(tmp_path):
    src = read_progress(progress_table([[0.0, 0.5, 1.0], [0.2, np.nan]]))
    path = write_progress(tmp_path / "p.parquet", src, metadata={"reward_model_path": "me"})
    schema = pq.read_schema(path)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("index", "int64"),
        ("episode_index", "int64"),
        ("frame_index", "int64"),
        ("progress_sparse", "float"),
    ]
    assert schema.metadata[b"reward_model_path"] == b"me"
    back = read_progress(path)
    np.testing.assert_array_equal(back.progress["sparse"], src.progress["sparse"])
    np.testing.assert_array_equal(back.index, src.index)
    assert not list(tmp_path.glob(".*tmp")), "the temporary file must be renamed away"


def test_missing_column_names_what_exists():
    table = progress_table([[0.0, 1.0]]).drop(["frame_index"])
    with pytest.raises(
        ValueError, match=r"\['frame_index'\] not found.*available: \['index', 'episode_index'"
    ):
        read_progress(table)


def test_missing_head_suggests_the_command():
    t = read_progress(progress_table([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`progress_dense` not found.*sarm progress --head dense"):
        t.column("dense")
    with pytest.raises(ValueError, match=r"progress_dense.*not found"):
        read_progress(progress_table([[0.0, 1.0]]), heads=["dense"])


def test_duplicate_index_is_an_error():
    table = progress_table([[0.0, 0.5, 1.0]])
    index = np.array([0, 1, 1], np.int64)
    table = table.set_column(0, "index", pa.array(index))
    with pytest.raises(ValueError, match="duplicate `index`.*row 2 has index 1 after 1"):
        read_progress(table)


def test_unsorted_index_is_an_error_unless_sort():
    table = progress_table([[0.1, 0.2], [0.3, 0.4]]).take([2, 3, 0, 1])
    with pytest.raises(ValueError, match=r"unsorted `index`.*sort=True"):
        read_progress(table)
    t = read_progress(table, sort=True)
    assert t.index.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(t.progress["sparse"], [0.1, 0.2, 0.3, 0.4])


def test_interleaved_episode_is_an_error():
    table = progress_table([[0.1, 0.2, 0.3]])
    table = table.set_column(1, "episode_index", pa.array(np.array([0, 1, 0], np.int64)))
    table = table.set_column(2, "frame_index", pa.array(np.array([0, 0, 2], np.int64)))
    with pytest.raises(ValueError, match=r"episode\(s\) \[0\].*not contiguous"):
        read_progress(table)


def test_inconsistent_frame_index_is_an_error():
    table = progress_table([[0.1, 0.2, 0.3]])
    table = table.set_column(2, "frame_index", pa.array(np.array([0, 1, 5], np.int64)))
    with pytest.raises(ValueError, match="inconsistent with `index` in episode 0 at row 2"):
        read_progress(table)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_values_outside_unit_interval_are_an_error(bad):
    with pytest.raises(ValueError, match=r"1 value\(s\) of `progress_sparse`.*outside \[0, 1\].*episode 1"):
        read_progress(progress_table([[0.0, 0.5], [0.5, bad]]))


def test_nan_is_allowed_and_nulls_become_nan():
    table = progress_table([[0.0, 0.5]]).set_column(3, "progress_sparse", pa.array([0.0, None], pa.float32()))
    t = read_progress(table)
    assert np.isnan(t.progress["sparse"][1])


def test_string_index_and_null_index_are_errors():
    table = progress_table([[0.0, 0.5]])
    with pytest.raises(ValueError, match="`index`.*should hold integers"):
        read_progress(table.set_column(0, "index", pa.array(["a", "b"])))
    with pytest.raises(ValueError, match="`index`.*1 null"):
        read_progress(table.set_column(0, "index", pa.array([0, None], pa.int64())))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_progress(tmp_path / "nope.parquet")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="not a readable parquet file"):
        read_progress(corrupt)


def test_empty_file_is_an_error(tmp_path):
    table = progress_table([[0.0]]).slice(0, 0)
    with pytest.raises(ValueError, match="no rows"):
        read_progress(table)


def test_row_group_reading_matches_whole_read(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [np.sort(rng.random(n)).astype(np.float32) for n in rng.integers(5, 50, size=40)]
    path = tmp_path / "p.parquet"
    pq.write_table(progress_table(episodes), path, row_group_size=37)
    t = read_progress(path, progress_bar=True)
    np.testing.assert_array_equal(t.progress["sparse"], np.concatenate(episodes))
    assert pq.ParquetFile(path).num_row_groups > 1


def test_write_validates_first(tmp_path):
    bad = ProgressTable(
        index=np.array([0, 0]),
        episode_index=np.array([0, 0]),
        frame_index=np.array([0, 1]),
        progress={"sparse": np.array([0.0, 0.1], np.float32)},
    )
    with pytest.raises(ValueError, match="duplicate"):
        write_progress(tmp_path / "x.parquet", bad)
    assert not (tmp_path / "x.parquet").exists()
