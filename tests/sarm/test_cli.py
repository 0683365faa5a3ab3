"""The `sarm` CLI end to end (info -> features -> train -> progress -> viz -> rabc weights), and errors."""

import json

import numpy as np
import pytest

from rabc import read_progress
from rabc.cli import main as rabc_main
from sarm.cli import main
from sarm.data import open_dataset
from sarm.features import FeatureCache, extract_features
from sarm.inference.progress import compute_progress
from sarm.training.from_cache import train_from_cache
from sarm.training.loop import TrainConfig
from tests.sarm.data.test_dataset import LENGTHS, TASKS, make_v21, make_v30
from tests.sarm.features.test_cache import CountingEncoder

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


def test_each_frame_is_encoded_once_for_training_and_inference_together(tmp_path):
    ds = open_dataset(make_v21(tmp_path / "ds"))
    encoder = CountingEncoder(32)
    cache = extract_features(ds, encoder, tmp_path / "cache", progress=False)
    overrides = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "n_obs_steps": 2, "frame_gap": 3}
    config = TrainConfig(steps=3, batch_size=4, warmup_steps=1, eval_every=3, checkpoint_every=3)
    model, _, _ = train_from_cache(
        cache, tmp_path / "run", config=config, model_overrides=overrides, progress=False
    )
    compute_progress(model, FeatureCache(tmp_path / "cache"), tmp_path / "p.parquet", progress=False)
    assert encoder.images == ds.num_frames == sum(LENGTHS)  # one encode per frame, nothing after the cache
    assert len(encoder.texts) == len(set(encoder.texts))  # every text encoded once


def test_the_pipeline_from_the_command_line(tmp_path, capsys):
    root = make_v30(tmp_path / "ds")
    cache, run, out = tmp_path / "cache", tmp_path / "run", tmp_path / "sarm_progress.parquet"
    assert main(["info", str(root)]) == 0
    assert "episodes=3" in capsys.readouterr().out
    assert main(["features", str(root), "--out", str(cache), "--encoder", "pixels:32"]) == 0
    assert len(FeatureCache(cache).episodes) == 3
    spans = {
        "0": [["reach", 0, 9], ["place", 10, 19]],
        "1": [["reach", 0, 14], ["place", 15, 24]],
        "2": [["reach", 0, 9], ["place", 10, 29]],
    }
    (tmp_path / "spans.json").write_text(json.dumps(spans))
    args = [
        "train",
        "--cache",
        str(cache),
        "--out",
        str(run),
        "--annotations",
        str(tmp_path / "spans.json"),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        *TINY,
    ]
    assert main(args) == 0
    report = capsys.readouterr().out
    assert '"reach"' in report and "trained to step 2" in report
    schemas = json.loads((run / "model" / "config.json").read_text())["schemas"]["sparse"]
    assert sorted(schemas) == sorted(set(TASKS))  # two tasks, one schema each
    assert schemas["place the cube"]["names"] == ["reach", "place"]
    assert (
        main(
            [
                "progress",
                "--model",
                str(run / "model"),
                "--cache",
                str(cache),
                "--output",
                str(out),
                "--stride",
                "2",
                "--stage-probs",
            ]
        )
        == 0
    )
    table = read_progress(out)
    assert len(table) == sum(LENGTHS) and np.isfinite(table.column("sparse")).all()
    assert (
        main(["viz", str(out), "--out", str(tmp_path / "viz"), "--episodes", "0-1", "--dataset", str(root)])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "viz").glob("*.png")) == [
        "episode_000000.png",
        "episode_000001.png",
    ]
    assert rabc_main(["weights", str(out), "--chunk-size", "5", "-o", str(tmp_path / "w.parquet")]) == 0
    assert (tmp_path / "w.parquet").is_file()


def test_a_lerobot_checkpoint_needs_the_dataset_for_state_statistics(tmp_path, capsys):
    pytest.importorskip("open_clip")
    from tests.conftest import FIXTURES

    root = make_v21(tmp_path / "ds")
    assert (
        main(
            [
                "features",
                str(root),
                "--out",
                str(tmp_path / "c"),
                "--encoder",
                "clip:sarm-tiny",
                "--episodes",
                "0",
            ]
        )
        == 0
    )
    progress = ["progress", "--model", str(FIXTURES / "sarm_checkpoint"), "--cache", str(tmp_path / "c")]
    out = tmp_path / "p.parquet"
    assert main([*progress, "--output", str(out), "--dataset", str(root), "--head", "dense"]) == 0
    assert read_progress(out).heads == ["dense"]
    assert main([*progress, "--output", str(tmp_path / "q.parquet")]) == 0  # no --dataset: a warning
    assert "carries no state statistics" in capsys.readouterr().err


def test_errors_say_what_to_do(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "sarm info: error:" in capsys.readouterr().err
    assert main(["progress", "--cache", str(tmp_path)]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["train", "--cache", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "sarm features" in capsys.readouterr().err
    root = make_v21(tmp_path / "ds")
    assert main(["features", str(root), "--out", str(tmp_path / "c"), "--encoder", "nonsense"]) == 2
    assert "unknown encoder spec" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["info", "features", "train", "progress", "viz"])
def test_help_explains_every_option(command, capsys):
    import argparse

    from sarm.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    undocumented = [a.dest for a in sub._actions if not a.help]
    assert undocumented == []
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: sarm " + command in capsys.readouterr().out
