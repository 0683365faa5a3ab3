"""`sarm annotate --api-base` against a real chat-completions server on 127.0.0.1 (fake_vlm.FakeVLM)."""

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sarm.annotate.backends import BackendError, EndpointBackend, Frame
from sarm.cli import main
from sarm.labels.annotations import read_lerobot_annotations, read_spans
from sarm.labels.schema import Span
from tests.sarm.annotate.fake_vlm import FakeVLM, good, make_dataset
from tests.waiting import HANG_S

TASKS = ["good", "malformed", "disorder-then-good", "beyond", "error500-then-good", "timeout"]
LENGTHS = [30, 32, 34, 36, 38, 40]  # 10 fps: 3.0 s ... 4.0 s


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("endpoint") / "ds", TASKS, LENGTHS)
    original = (root / "meta/episodes/chunk-000/file-000.parquet").read_bytes()
    with FakeVLM() as vlm:
        argv = ["annotate", str(root), "--sparse-subtasks", "a, b ,c", "--api-base", vlm.url]
        argv += ["--model", "served-vlm", "--timeout", "5", "--max-retries", "1", "--num-workers", "3"]
        code = main([*argv, "--num-visualizations", "2"])
    return root, code, vlm.requests, original


def test_good_retried_and_failed_episodes_end_where_they_should(annotated):
    root, code, _, _ = annotated
    assert code == 1  # some episodes failed
    spans = read_lerobot_annotations(root, "sparse")
    # "good" at 3.0 s: a 0-1, b 1-2, c 2-3 s -> frames (int(s * 10)) 0-10, 10-20, 20-29 (30 == length)
    assert spans[0] == [Span("a", 0, 10), Span("b", 10, 20), Span("c", 20, 29)]
    # 3.4 s, retried after names in reverse order: 1.1 / 2.3 s -> 11 / 23, end 3.4 s -> 33
    assert spans[2] == [Span("a", 0, 11), Span("b", 11, 23), Span("c", 23, 33)]
    # 3.8 s after an HTTP 500: 1.3 / 2.5 s
    assert spans[4] == [Span("a", 0, 13), Span("b", 13, 25), Span("c", 25, 37)]
    assert spans[1] is None and spans[3] is None and spans[5] is None  # never invalid spans
    table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert table[0]["sparse_subtask_start_times"] == [0.0, 1.0, 2.0]
    assert table[0]["sparse_subtask_end_times"] == [1.0, 2.0, 3.0]


def test_failures_are_reported_with_their_reasons(annotated, capsys):
    root, _, _, _ = annotated
    failures = json.loads((root / ".sarm_annotate/failures.json").read_text())
    assert sorted(failures) == ["1", "3", "5"]
    assert "no JSON object" in failures["1"] and "2 attempt(s)" in failures["1"]
    assert "beyond the end of the video at 3.60 s" in failures["3"]
    assert "within 5 s (--timeout)" in failures["5"]
    saved = json.loads((root / ".sarm_annotate/episodes/episode_000004.json").read_text())
    assert saved["status"] == "annotated" and saved["attempts"] == {"sparse": 2}


def test_a_bad_answer_goes_back_into_the_conversation_with_its_error(annotated):
    _, _, requests, _ = annotated
    tries = [r for r in requests if "Task: disorder-then-good" in r["messages"][0]["content"][0]["text"]]
    assert len(tries) == 2 and len(tries[0]["messages"]) == 2 and len(tries[1]["messages"]) == 4
    assistant, user = tries[1]["messages"][2:]
    assert assistant["role"] == "assistant" and '"name": "c"' in assistant["content"][0]["text"]
    assert user["role"] == "user" and "in this order" in user["content"][0]["text"]


def test_frames_go_as_images_after_their_times(annotated):
    _, _, requests, _ = annotated
    first = next(r for r in requests if "Task: good" in r["messages"][0]["content"][0]["text"])
    assert first["path"] == "/v1/chat/completions" and first["model"] == "served-vlm"
    parts = first["messages"][1]["content"]
    texts = [p["text"] for p in parts[:-1:2]]
    # 1 frame per second of a 3 s episode, plus its last frame (2.9 s)
    assert texts == ["t=0.00 s", "t=1.00 s", "t=2.00 s", "t=2.90 s"]
    images = [p["image_url"]["url"] for p in parts[1::2]]
    assert all(u.startswith("data:image/jpeg;base64,") for u in images)
    levels = [np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",")[1])))).mean() for u in images]
    np.testing.assert_allclose(levels, [0, 80, 160, 232], atol=4)  # frames 0, 10, 20, 29: 8 * frame


def test_the_originals_are_backed_up_and_proportions_and_pngs_written(annotated):
    root, _, _, original = annotated
    backups = list((root / "meta/backups").glob("episodes-*/chunk-000/file-000.parquet"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    proportions = json.loads((root / "meta/temporal_proportions_sparse.json").read_text())
    assert list(proportions) == ["a", "b", "c"] and sum(proportions.values()) == pytest.approx(1)
    assert sorted(p.name for p in (root / ".sarm_annotate/viz").iterdir()) == [
        "episode_000000.png",
        "episode_000002.png",
    ]


def test_dense_only_writes_a_single_task_sparse_stage_into_a_spans_file(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ["good", "good"], [30, 20])
    out = tmp_path / "spans.json"
    with FakeVLM() as vlm:
        argv = ["annotate", str(root), "--dense-only", "--dense-subtasks", "x,y", "--api-base", vlm.url]
        assert main([*argv, "--out-spans", str(out), "--num-visualizations", "1"]) == 0
    assert read_spans(out) == {0: [Span("task", 0, 29)], 1: [Span("task", 0, 19)]}
    assert read_spans(tmp_path / "spans.dense.json") == {
        0: [Span("x", 0, 15), Span("y", 15, 29)],
        1: [Span("x", 0, 10), Span("y", 10, 19)],
    }
    assert not (root / "meta/backups").exists()  # the dataset is left alone
    printed = capsys.readouterr().out
    assert "2 annotated, 0 failed" in printed and "mean spans per episode: sparse 1.00, dense 2.00" in printed
    assert (
        f"sarm explore {root} --annotations {out} --dense-annotations {tmp_path / 'spans.dense.json'}"
        in printed
    )


def test_skip_existing_leaves_annotated_episodes_alone(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ["good", "good", "good"], [30, 30, 30])
    with FakeVLM() as vlm:
        base = [
            "annotate",
            str(root),
            "--sparse-subtasks",
            "a,b",
            "--api-base",
            vlm.url,
            "--num-visualizations",
            "0",
        ]
        assert main([*base, "--episodes", "0", "2"]) == 0
        assert len(vlm.requests) == 2
        assert main([*base, "--skip-existing", "--work-dir", str(tmp_path / "w2")]) == 0
        assert len(vlm.requests) == 3  # only episode 1 was asked
    assert "1 annotated, 0 failed, 2 skipped (2 already annotated" in capsys.readouterr().out
    assert sorted(e for e, s in read_lerobot_annotations(root, "sparse").items() if s) == [0, 1, 2]


def test_the_api_key_is_sent_from_the_named_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_VLM_KEY", "secret-123")
    root = make_dataset(tmp_path / "ds", ["good"], [20])
    with FakeVLM() as vlm:
        argv = [
            "annotate",
            str(root),
            "--sparse-subtasks",
            "a",
            "--api-base",
            vlm.url,
            "--api-key-env",
            "MY_VLM_KEY",
        ]
        assert main([*argv, "--num-visualizations", "0"]) == 0
    assert vlm.requests[0]["auth"] == "Bearer secret-123"


def test_an_unreachable_server_is_a_backend_error():
    backend = EndpointBackend("http://127.0.0.1:9/v1", "m", timeout_s=HANG_S)
    with pytest.raises(BackendError, match="cannot reach"):
        backend.chat([{"role": "user", "content": ["hi", Frame(np.zeros((4, 4, 3), np.uint8), 0.0)]}])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dense-only"], "pass --dense-subtasks too"),
        (["--dense-subtasks", "x"], None),
        ([], None),
        (["--sparse-subtasks", "a,a"], "more than once"),
        (["--sparse-subtasks", "a,,b"], "empty name"),
        (["--sparse-subtasks", "a", "--fps-sample", "0"], "--fps-sample should be a positive number"),
        (
            ["--sparse-subtasks", "a", "--api-key-env", "NO_SUCH_VAR"],
            "NO_SUCH_VAR: that environment variable is not set",
        ),
        (["--sparse-subtasks", "a", "--video-key", "nope"], "--video-key 'nope' is not a video camera"),
        (["--sparse-subtasks", "a", "--episodes", "7"], r"--episodes: episodes \[7\] are not in the dataset"),
    ],
)
def test_bad_flags_get_one_line_errors_in_the_commands_terms(tmp_path, capsys, extra, message):
    root = make_dataset(tmp_path / "ds", ["good"], [20])
    assert main(["annotate", str(root), *extra, "--api-base", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarm annotate: error: ") and err.count("\n") == 1
    assert re.search(message or "pass --sparse-subtasks", err)


def test_a_read_only_dataset_is_refused_before_the_model_is_asked(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ["good"], [20])
    parquet = root / "meta/episodes/chunk-000/file-000.parquet"
    parquet.chmod(0o444)
    with FakeVLM() as vlm:
        assert main(["annotate", str(root), "--sparse-subtasks", "a", "--api-base", vlm.url]) == 2
        assert vlm.requests == []
    assert f"`{parquet}` is read-only; pass --out-spans FILE" in capsys.readouterr().err


V21 = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "g1_pick_bottle_v21_first20"


@pytest.mark.skipif(not V21.is_dir(), reason="needs ../shared/datasets")
def test_a_real_v21_dataset_needs_out_spans_and_gets_spans_inside_its_episodes(tmp_path, capsys):
    from sarm.data import open_dataset

    # episodes 0, 3, 6 and 9 of this dataset have no video file
    argv = ["annotate", str(V21), "--sparse-subtasks", "reach,grasp,lift", "--episodes", "0-4"]
    assert main([*argv, "--api-base", "http://127.0.0.1:9/v1"]) == 2
    assert "codebase v2.1 dataset" in capsys.readouterr().err
    assert main([*argv, "--api-base", "http://127.0.0.1:9/v1", "--out-spans", str(tmp_path / "x.json")]) == 2
    assert "--missing-videos skip" in capsys.readouterr().err
    out = tmp_path / "spans.json"
    with FakeVLM() as vlm:
        vlm.answer = lambda task, names, duration, tries: (
            200,
            json.dumps({"subtasks": good(names, duration)}),
        )
        argv += ["--missing-videos", "skip", "--num-visualizations", "1"]
        assert main([*argv, "--api-base", vlm.url, "--out-spans", str(out)]) == 0
    assert "left out 2 episode(s) without a video (--missing-videos skip): [0, 3]" in capsys.readouterr().out
    ds = open_dataset(V21)
    spans = read_spans(
        out, num_frames={e: int(n) for e, n in zip(ds.episodes, ds.episode_lengths, strict=True)}
    )
    assert sorted(spans) == [1, 2, 4] and [s.name for s in spans[4]] == ["reach", "grasp", "lift"]
    length = int(ds.episode_lengths[ds.episode_position(4)])
    assert spans[4][-1].end == length - 1 and spans[4][0].start == 0
    assert (tmp_path / "spans.json.annotate/viz/episode_000001.png").is_file()
