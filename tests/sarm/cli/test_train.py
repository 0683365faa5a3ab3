"""`sarm train` into an existing run: other settings are refused, named as flags with old and new values,
before anything is written; `--extend` trains further; a state-only cache trains."""

from __future__ import annotations

import pytest

from sarm.cli import main
from sarm.data import open_dataset
from sarm.features.encoders import PixelEncoder
from sarm.features.extract import extract_features
from tests.sarm.data.test_dataset import make_v21
from tests.sarm.inference.test_progress_checks import edited_copy

pytest.importorskip("av")
TINY = [
    "--hidden-dim",
    "32",
    "--num-layers",
    "1",
    "--num-heads",
    "2",
    "--n-obs-steps",
    "2",
    "--frame-gap",
    "3",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = make_v21(tmp_path_factory.mktemp("cli_train") / "ds")
    return extract_features(open_dataset(root), PixelEncoder(32), root.parent / "cache", progress=False)


def train(cache, out, *extra, steps=2):
    args = [
        "train",
        "--cache",
        str(cache.root),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "4",
    ]
    return main([*args, "--warmup", "1", "--eval-every", "2", "--checkpoint-every", "2", *TINY, *extra])


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarm train: error:") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--window", "centered"], "--window: run 'past', now 'centered'"),
        (["--attention", "lerobot"], "--attention: run 'causal', now 'lerobot'"),
        (["--frame-gap", "4"], "--frame-gap: run 3, now 4"),
        (["--hidden-dim", "64"], "--hidden-dim: run 32, now 64"),  # a size mismatch: one line, no torch
        (["--lr", "1e-3"], "--lr: run 5e-05, now 0.001"),
        (["--anchor-stride", "2"], "--anchor-stride: run 1, now 2"),
    ],
)
def test_a_rerun_with_other_settings_is_refused_before_anything_is_written(
    cache, tmp_path, capsys, flags, named
):
    assert train(cache, tmp_path / "run") == 0
    before = files(tmp_path / "run")
    capsys.readouterr()
    assert train(cache, tmp_path / "run", *TINY, *flags) == 2  # the later flag wins
    err = error_line(capsys)
    assert named in err and "--no-resume" in err and "resume=False" not in err
    assert files(tmp_path / "run") == before  # model/config.json still describes the weights
    assert train(cache, tmp_path / "run", *flags, "--no-resume") == 0


def test_more_steps_need_extend(cache, tmp_path, capsys):
    assert train(cache, tmp_path / "run") == 0
    capsys.readouterr()
    assert train(cache, tmp_path / "run", steps=4) == 2
    err = error_line(capsys)
    assert "--steps: run 2, now 4" in err and "pass --extend" in err
    assert train(cache, tmp_path / "run", "--extend", steps=4) == 0
    assert "trained to step 4" in capsys.readouterr().out


def test_a_state_only_cache_trains_from_the_command_line(cache, tmp_path, capsys):
    state_only = edited_copy(cache, tmp_path / "state_only", state_only=True)
    assert train(state_only, tmp_path / "run") == 0
    assert "trained to step 2" in capsys.readouterr().out
    out = tmp_path / "p.parquet"
    args = ["progress", "--model", str(tmp_path / "run" / "model"), "--cache", str(state_only.root)]
    assert main([*args, "--output", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--steps", "0"], "--steps should be a positive integer, but got 0"),
        (["--anchor-stride", "0"], "--anchor-stride should be a positive integer"),
        (["--eval-fraction", "1.5"], "--eval-fraction should be in (0, 1)"),
        (["--hidden-dim", "30", "--num-heads", "4"], "--hidden-dim 30 is not divisible by --num-heads 4"),
        (["--window", "centered", "--n-obs-steps", "3"], "--window centered needs an even --n-obs-steps"),
    ],
)
def test_bad_values_are_named_as_flags(cache, tmp_path, capsys, flags, named):
    assert train(cache, tmp_path / "run", *flags) == 2
    err = error_line(capsys)
    assert named in err and "=" not in err.split("error:")[1]  # no Python `name=value` hints
    assert not (tmp_path / "run").exists()
