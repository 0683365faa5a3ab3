"""RA-BC weights lie in [0, 1]: fallback weights, the sampler, the loss and weights files refuse the rest."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from rabc import RABCLoss, RABCWeightedSampler, RABCWeights, rabc_weighted_loss
from rabc.cli import main
from tests.conftest import progress_table


def _with_nan():
    p = np.linspace(0, 1, 40)
    p[10] = np.nan
    return progress_table([p, np.linspace(0, 1, 30)])


@pytest.mark.parametrize("bad", [-3.0, 7.0, float("nan"), float("inf"), True, "1"])
def test_from_progress_refuses_a_fallback_weight_outside_0_1(bad):
    with pytest.raises(ValueError, match=r"fallback_weight should be a number in \[0, 1\].*fallback_weight="):
        RABCWeights.from_progress(_with_nan(), chunk_size=5, fallback_weight=bad)


def test_every_constructor_path_refuses_a_bad_fallback_weight():
    w = RABCWeights.from_progress(_with_nan(), chunk_size=5)
    args = {**w._init_args(), "fallback_weight": -3.0}
    with pytest.raises(ValueError, match=r"fallback_weight should be a number in \[0, 1\]"):
        RABCWeights(**args)
    w.fallback_weight = 7.0  # set by hand after construction: with_kappa rebuilds through __init__
    with pytest.raises(ValueError, match=r"fallback_weight=7\.0"):
        w.with_kappa(0.02)
    good = RABCWeights.from_progress(_with_nan(), chunk_size=5, fallback_weight=0.0)
    assert good.num_fallback > 0 and good.weights[np.isnan(good.deltas)].max() == 0.0


@pytest.mark.parametrize("bad", ["-3", "7", "nan", "lots"])
def test_cli_refuses_a_bad_fallback_weight_and_writes_nothing(tmp_path, capsys, bad):
    progress = tmp_path / "p.parquet"
    pq.write_table(_with_nan(), progress)
    out = tmp_path / "w.parquet"
    with pytest.raises(SystemExit) as exit_info:
        main(["weights", str(progress), "--chunk-size", "5", "--fallback-weight", bad, "-o", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--fallback-weight" in err and "[0, 1]" in err and "'none'" in err
    assert not out.exists()


def test_rabc_weights_arrays_must_agree_and_weights_lie_in_0_1():
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 30)]), chunk_size=5)
    with pytest.raises(ValueError, match=r"`deltas` has shape \(29,\) but `index` has 30 rows"):
        RABCWeights(**{**w._init_args(), "deltas": w.deltas[:-1]})
    for bad in (1.5, -0.1, np.nan):
        weights = w.weights.copy()
        weights[3] = bad
        with pytest.raises(ValueError, match=r"1 weight\(s\) are NaN or outside \[0, 1\].*at index 3"):
            RABCWeights(**{**w._init_args(), "weights": weights})


class _Aligned:  # duck-typed RABCWeights: .weights and .index 0..N-1
    def __init__(self, weights):
        self.weights = np.asarray(weights, np.float32)
        self.index = np.arange(len(self.weights))


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("make", [np.asarray, torch.tensor, list, _Aligned])
def test_sampler_refuses_weights_above_one(make, replacement):
    with pytest.raises(ValueError, match=r"finite and in \[0, 1\].*1 are above 1.*first at position 2"):
        RABCWeightedSampler(make([0.5, 1.0, 3.0, 0.0]), replacement=replacement)


def test_loss_refuses_weights_above_one():
    losses = torch.ones(3, 2)
    with pytest.raises(ValueError, match=r"finite and in \[0, 1\], got \[1\.5\] at batch positions \[1\]"):
        rabc_weighted_loss(losses, torch.tensor([1.0, 1.5, 0.0]))
    with pytest.raises(ValueError, match=r"finite and in \[0, 1\], got \[2\.0\]"):
        RABCLoss(nn.MSELoss(reduction="none"), weights=torch.tensor([1.0, 2.0]))
    # a weight source with a bad value is caught when its batch is looked up
    w = RABCWeights.from_progress(progress_table([np.linspace(0, 1, 10)]), chunk_size=2)
    w.weights[4] = 3.0
    loss_fn = RABCLoss(nn.MSELoss(reduction="none"), weights=w)
    with pytest.raises(ValueError, match=r"\[3\.0\] at batch positions \[1\]"):
        loss_fn(torch.zeros(2, 3), torch.ones(2, 3), index=torch.tensor([0, 4]))


# -- weights files are validated on load ---------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    w = RABCWeights.from_progress(
        progress_table([np.linspace(0, 1, 30), np.linspace(0, 1, 20)]), chunk_size=5
    )
    return w.save(tmp_path / "w.parquet")


def _rewrite(path, **changes):
    table = pq.read_table(path)
    meta = table.schema.metadata
    for name, values in changes.items():
        if values is None:
            table = table.drop_columns([name])
        else:
            table = table.set_column(table.column_names.index(name), name, pa.array(values))
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.nan, r"1 weight\(s\) are NaN or outside \[0, 1\] \(first: nan at index 7\)"),
        (1.25, r"outside \[0, 1\] \(first: 1\.25 at index 7\)"),
        (-1.0, r"outside \[0, 1\] \(first: -1\.0 at index 7\)"),
    ],
)
def test_load_refuses_bad_weights_naming_the_file(saved, bad, match):
    weights = pq.read_table(saved).column("weight").to_numpy().copy()
    weights[7] = bad
    _rewrite(saved, weight=weights)
    with pytest.raises(ValueError, match=match) as info:
        RABCWeights.load(saved)
    assert str(saved) in str(info.value) and "rabc weights" in str(info.value)


def test_load_refuses_a_missing_column(saved):
    _rewrite(saved, delta=None)
    with pytest.raises(ValueError, match=r"w\.parquet` lacks column\(s\) \['delta'\].*rabc weights"):
        RABCWeights.load(saved)


def test_load_refuses_corrupt_and_foreign_files(tmp_path, saved):
    data = saved.read_bytes()
    for name, content in [("text.parquet", b"index,weight\n0,1\n"), ("cut.parquet", data[: len(data) // 2])]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(
            ValueError, match=rf"weights file `.*{name}` is not a readable parquet file"
        ) as info:
            RABCWeights.load(path)
        assert "\n" not in str(info.value) and "rabc weights" in str(info.value)


def test_load_refuses_broken_metadata(saved):
    table = pq.read_table(saved)
    meta = json.loads(table.schema.metadata[b"rabc"])
    del meta["kappa"]
    pq.write_table(table.replace_schema_metadata({b"rabc": json.dumps(meta).encode()}), saved)
    with pytest.raises(ValueError, match=r"w\.parquet` has parameters .* expected .*kappa"):
        RABCWeights.load(saved)
    pq.write_table(table.replace_schema_metadata({b"rabc": b"{not json"}), saved)
    with pytest.raises(ValueError, match="unknown weights format"):
        RABCWeights.load(saved)
