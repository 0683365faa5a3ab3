"""`sarm annotate`: sparse and dense subtask spans from a vision-language model (LeRobot's Step 1)."""

from __future__ import annotations

import os
from pathlib import Path

from sarm.cli.common import add_dataset_args, open_from_args, parse_episodes

DEFAULT_MODEL = "Qwen/Qwen3-VL-30B-A3B-Instruct"


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "annotate",
        help="subtask spans from a vision-language model -> meta/episodes columns or a spans file",
        formatter_class=fmt,
        description="Show each episode's frames (sampled at --fps-sample, with their times) to a VLM, ask "
        'for {"subtasks": [{"name", "start", "end"}, ...]} in seconds, check the answer (known names, in '
        "order, inside the episode, no overlap beyond a frame; a bad answer is retried with its error) and "
        "write LeRobot's {sparse,dense}_subtask_* columns into meta/episodes (v3.0, with a backup) or, with "
        "--out-spans, spans files `sarm train` reads. Resumable per episode; see docs/annotate.md.",
    )
    add_dataset_args(p)
    p.add_argument(
        "--sparse-subtasks", help='sparse subtask names in order, comma-separated: "reach,grasp,place"'
    )
    p.add_argument(
        "--dense-subtasks", help="dense subtask names in order, comma-separated (adds the dense head)"
    )
    p.add_argument(
        "--dense-only",
        action="store_true",
        help="annotate only --dense-subtasks; the sparse head becomes one 'task' stage over each episode",
    )
    p.add_argument(
        "--video-key", help="camera shown to the model (default: the dataset's first video camera)"
    )
    p.add_argument("--episodes", nargs="+", help="episodes to annotate, e.g. 0-9,15 or 0 1 2 (default: all)")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave out episodes that already have spans for the asked heads (in the dataset or --out-spans)",
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help="model: a Hub id or folder (local), or the served name"
    )
    p.add_argument("--num-workers", type=int, default=1, help="episodes in flight at once (threads)")
    p.add_argument("--num-visualizations", type=int, default=5, help="PNGs of the first N annotated episodes")
    p.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM)")
    p.add_argument("--api-key-env", help="environment variable that holds the endpoint's API key")
    p.add_argument("--fps-sample", type=float, default=1.0, help="frames per second shown to the model")
    p.add_argument("--max-retries", type=int, default=2, help="more tries per head after a bad answer")
    p.add_argument(
        "--out-spans", help="write spans JSON (FILE, and FILE's .dense twin) instead of the dataset"
    )
    p.add_argument("--max-frames", type=int, help="at most this many frames per episode, evenly spaced")
    p.add_argument(
        "--max-side", type=int, default=448, help="shrink frames whose longer side is larger (pixels)"
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one endpoint reply")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0: greedy)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="tokens per answer")
    p.add_argument("--device", help="local model device (default: cuda if available, else cpu)")
    p.add_argument(
        "--dtype",
        choices=("auto", "bfloat16", "float16", "float32"),
        default="auto",
        help="local model dtype",
    )
    p.add_argument(
        "--work-dir", help="per-episode results (default: DATASET/.sarm_annotate, or FILE.annotate/)"
    )
    p.add_argument("--viz-dir", help="folder for the PNGs (default: WORK_DIR/viz)")
    p.set_defaults(run=run)


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise ValueError(f'{flag} has an empty name in {text!r}; write names separated by commas: "a,b,c"')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{flag} names {repeated} more than once; each subtask name once, in order")
    return names


def _check_args(args) -> tuple[list[str] | None, list[str] | None]:
    sparse, dense = (
        _names(args.sparse_subtasks, "--sparse-subtasks"),
        _names(args.dense_subtasks, "--dense-subtasks"),
    )
    if args.dense_only and not dense:
        raise ValueError("--dense-only annotates the dense head only: pass --dense-subtasks too")
    if args.dense_only and sparse:
        raise ValueError("--dense-only makes the sparse head one 'task' stage: drop --sparse-subtasks")
    if not sparse and not args.dense_only:
        raise ValueError('pass --sparse-subtasks "a,b,c" (or --dense-only with --dense-subtasks)')
    minimum = {
        "--num-workers": (args.num_workers, 1),
        "--max-retries": (args.max_retries, 0),
        "--num-visualizations": (args.num_visualizations, 0),
        "--max-side": (args.max_side, 1),
        "--max-new-tokens": (args.max_new_tokens, 1),
    }
    for flag, (value, low) in minimum.items():
        if value < low:
            raise ValueError(f"{flag} should be at least {low}, got {value}")
    if args.max_frames is not None and args.max_frames < 2:
        raise ValueError(f"--max-frames should be at least 2, got {args.max_frames}")
    for flag, value in (("--fps-sample", args.fps_sample), ("--timeout", args.timeout)):
        if not value > 0:
            raise ValueError(f"{flag} should be a positive number, got {value}")
    if args.temperature < 0:
        raise ValueError(f"--temperature should be 0 or more, got {args.temperature}")
    if args.api_key_env and not args.api_base:
        raise ValueError("--api-key-env goes with --api-base (the endpoint the key is for)")
    if args.api_key_env and not os.environ.get(args.api_key_env):
        raise ValueError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty")
    return sparse, dense


def _camera(ds, key: str | None) -> str:
    videos = [c for c in ds.camera_keys if ds.info["features"].get(c, {}).get("dtype") == "video"]
    if not videos:
        raise ValueError(f"`{ds.root}` has no video camera to show the model (cameras: {ds.camera_keys})")
    if key is None:
        return videos[0]
    if key not in videos:
        raise ValueError(f"--video-key {key!r} is not a video camera of the dataset; choose one of {videos}")
    return key


def _check_output(args, ds) -> None:
    from rabc.files import check_output_file

    if args.out_spans:
        check_output_file(args.out_spans, "--out-spans")
        return
    if not Path(args.dataset).expanduser().is_dir():
        raise ValueError(
            f"{args.dataset!r} was read from the Hub cache, which is not written; pass --out-spans FILE, or "
            "download a copy (hf download --repo-type dataset ID --local-dir DIR) and annotate DIR"
        )
    if ds.version != "v3.0":
        raise ValueError(
            f"`{ds.root}` is a codebase {ds.version} dataset, whose episodes have no meta/episodes parquet "
            "for LeRobot's annotation columns; pass --out-spans FILE to write spans `sarm train` reads"
        )
    episodes_dir = Path(ds.root) / "meta" / "episodes"
    for path in [episodes_dir, *episodes_dir.rglob("*.parquet")]:
        # the mode bits too: root may write anything, but a copy made read-only is meant to stay as it is
        if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:
            raise ValueError(f"`{path}` is read-only; pass --out-spans FILE to write spans files instead")


def _without_videos(ds, camera: str, episodes: list[int], mode: str) -> list[int]:
    """The asked episodes whose video file is missing: an error naming them, or (skip) left out."""
    missing = sorted(set(episodes) & set(ds.missing_videos(camera).tolist()))
    if missing and mode == "error":
        raise ValueError(
            f"{ds.missing_report(camera)}; restore the files, or leave those episodes out with "
            "--missing-videos skip"
        )
    return missing


def _existing(args, ds, heads) -> set[int]:
    """Episodes that already have spans for every asked head."""
    from sarm.annotate.write import spans_path
    from sarm.labels.annotations import read_lerobot_annotations, read_spans

    have = None
    for head in heads:
        if args.out_spans:
            path = spans_path(args.out_spans, head)
            found = read_spans(path) if path.is_file() else {}
        else:
            try:
                found = read_lerobot_annotations(ds.root, head)
            except ValueError as err:
                if "no SARM annotation columns" not in str(err):
                    raise
                found = {}  # no columns for this head yet
        done = {e for e, s in found.items() if s}
        have = done if have is None else have & done
    return have or set()


def _backend(args):
    from sarm.annotate.backends import EndpointBackend, TransformersBackend

    if args.api_base:
        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        return EndpointBackend(args.api_base, args.model, api_key=key, timeout_s=args.timeout,
                               max_tokens=args.max_new_tokens, temperature=args.temperature)  # fmt: skip
    return TransformersBackend(args.model, device=args.device, dtype=args.dtype,
                               max_new_tokens=args.max_new_tokens, temperature=args.temperature)  # fmt: skip


def run(args) -> int:
    from sarm.annotate.run import AnnotateSettings, annotate_episodes
    from sarm.annotate.verify import explore_command, plot_annotations
    from sarm.annotate.write import spans_path, write_json, write_spans_files, write_to_dataset

    sparse, dense = _check_args(args)
    ds = open_from_args(args)
    camera = _camera(ds, args.video_key)
    _check_output(args, ds)
    spec = None if args.episodes is None else ",".join(args.episodes)
    episodes = parse_episodes(spec, "--episodes", available=ds.episodes)
    episodes = ds.episodes.tolist() if episodes is None else episodes
    no_video = _without_videos(ds, camera, episodes, args.missing_videos)
    settings = AnnotateSettings(camera=camera, sparse=sparse, dense=dense, dense_only=args.dense_only,
                                fps_sample=args.fps_sample, max_frames=args.max_frames,
                                max_side=args.max_side, model=args.model)  # fmt: skip
    written_heads = {"sparse": ["task"], **settings.heads()} if args.dense_only else settings.heads()
    skipped = sorted(set(episodes) & _existing(args, ds, settings.heads())) if args.skip_existing else []
    episodes = [e for e in episodes if e not in {*skipped, *no_video}]
    default_work = f"{args.out_spans}.annotate" if args.out_spans else Path(ds.root) / ".sarm_annotate"
    work_dir = Path(args.work_dir or default_work)
    summary = annotate_episodes(ds, settings, _backend(args), work_dir, episodes,
                                max_retries=args.max_retries, num_workers=args.num_workers)  # fmt: skip
    done = {e: r for e, r in summary.results.items() if r["status"] == "annotated"}
    if args.out_spans:
        outputs = write_spans_files(args.out_spans, done, written_heads) if done else []
    else:
        lengths = dict(zip(ds.episodes.tolist(), ds.episode_lengths.tolist(), strict=True))
        written, proportions = write_to_dataset(ds.root, done, written_heads, lengths) if done else (None, [])
        outputs = [*(written.files if written else []), *proportions]
    failures = {str(e): summary.results[e]["reason"] for e in summary.failed}
    report = write_json(work_dir / "failures.json", failures, indent=1)
    pngs = plot_annotations(ds, done, camera, args.viz_dir or work_dir / "viz", args.num_visualizations)

    for e in summary.failed[:20]:
        print(f"failed: episode {e}: {summary.results[e]['reason']}")
    if len(summary.failed) > 20:
        print(f"... and {len(summary.failed) - 20} more failed episodes (all in {report})")
    spans = ", ".join(f"{h} {summary.mean_spans(h):.2f}" for h in written_heads)
    print(
        f"sarm annotate: {len(summary.annotated)} annotated, {len(summary.failed)} failed, "
        f"{len(skipped) + len(summary.resumed)} skipped ({len(skipped)} already annotated, "
        f"{len(summary.resumed)} finished by an earlier run); mean spans per episode: {spans}"
    )
    if no_video:
        print(f"left out {len(no_video)} episode(s) without a video (--missing-videos skip): {no_video[:20]}")
    print(f"per-episode results in {work_dir / 'episodes'}; failure report: {report}")
    if not args.out_spans and outputs and written and written.backup:
        print(f"backup of the original meta/episodes files: {written.backup}")
    for path in outputs:
        print(f"wrote {path}")
    if pngs:
        print(f"wrote {len(pngs)} PNG(s) to {pngs[0].parent}; open them beside the video with:")
        dense_file = (
            spans_path(args.out_spans, "dense") if args.out_spans and "dense" in written_heads else None
        )
        print(f"  {explore_command(args.dataset, args.out_spans, dense_file)}")
    return 1 if summary.failed else 0
