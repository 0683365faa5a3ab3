"""Why does SARM end below 1.0 on successful episodes? A synthetic test of the demo's span rule.

`sarm demo` records 10 steps after the first success (`Protocol.steps_after_success`) and its spans
(`sarm.demo.collect.annotation_spans`, the stage's running maximum) end the last stage at the last
recorded frame. Frames after success all look the same (the object sits at the goal), but the label
still ramps tau through them. This script trains the same small SARM on synthetic episodes
(`sarm.training.synthetic`) with `after` frames of a constant "done" state appended, labelled two ways:

  in_last_span   the last span runs to the last frame (the demo's rule before the fix);
  after_success  the last span ends at the success frame, the frames after it get LeRobot's
                 "after the last span" label K - 1 + 0.999 (the fix in `annotation_spans(end=...)`);
  no_after       no frames after success (the control).

and prints the mean predicted progress at the last frame of held-out episodes, and its label.

    python benchmarks/label_end_progress.py --seeds 0 1 2    # about 4 minutes on 2 cores
    python benchmarks/label_end_progress.py --demo /tmp/end  # sarm demo's own data, about 8 minutes
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sarm import SARM, SARMConfig
from sarm.labels.schema import Span
from sarm.training.loop import TrainConfig, train
from sarm.training.rewind import RewindCollate
from sarm.training.synthetic import synthetic_episodes
from sarm.training.windows import WindowDataset, split_episodes

WINDOW = dict(mode="past", n_obs_steps=4, frame_gap=5, max_rewind_steps=2)


def _with_plateau(data, after: int, rule: str, seed: int = 1):
    """Episodes with `after` frames of the finished state appended, and their spans under `rule`."""
    rng = np.random.default_rng(seed)
    feats, states, lengths, spans = [], [], [], []
    for e, (s, n) in enumerate(zip(data.starts, data.lengths, strict=True)):
        f, x = data.features[s : s + n], data.state[s : s + n]
        feats.append(
            np.concatenate([f, f[-1] + 0.1 * rng.standard_normal((after, f.shape[1])).astype(np.float32)])
        )
        states.append(
            np.concatenate([x, x[-1] + 0.1 * rng.standard_normal((after, x.shape[1])).astype(np.float32)])
        )
        last = data.spans[e][-1]
        end = last.end + after if rule == "in_last_span" else last.end
        spans.append([*data.spans[e][:-1], Span(last.name, last.start, end)])
        lengths.append(n + after)
    return np.concatenate(feats), np.concatenate(states), np.asarray(lengths), spans


def run(rule: str, after: int, steps: int, episodes: int, seed: int = 0) -> tuple[float, float]:
    data = synthetic_episodes(episodes, seed=seed)
    features, state, lengths, spans = _with_plateau(data, 0 if rule == "no_after" else after, rule)
    targets = np.concatenate([data.schema.targets(s, int(n)) for s, n in zip(spans, lengths, strict=True)])
    train_eps, eval_eps = split_episodes(episodes, eval_fraction=0.2, seed=0)
    common = dict(
        episode_lengths=lengths, targets={"sparse": targets}, tasks=data.tasks, state=state, **WINDOW
    )
    train_set = WindowDataset(features, episodes=train_eps, **common)
    config = SARMConfig(
        image_dim=16, text_dim=8, max_state_dim=4, hidden_dim=32, num_layers=2, num_heads=4,
        window="past", n_obs_steps=4, frame_gap=5, max_rewind_steps=2,
        schemas={"sparse": {"*": data.schema.to_dict()}},
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    text = {"synthetic task": torch.randn(8, generator=g)}
    torch.manual_seed(seed)
    model = SARM(config)
    settings = TrainConfig(steps=steps, batch_size=32, lr=1e-3, min_lr=1e-4, warmup_steps=20, log_every=steps)
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        train(model, train_set, task_features=text, negative_text_features=torch.randn(16, 8, generator=g),
              out_dir=out, config=settings, progress=False)  # fmt: skip
    model = model.cpu().eval()
    ends = np.cumsum(lengths)
    last = WindowDataset(features, episodes=eval_eps, **common)
    anchors = np.array([i for i in range(len(last)) if int(last[i]["frame"]) + 1 in set(ends.tolist())])
    batch = RewindCollate(text, rewind_probability=0, language_negative_probability=0)(
        [last[i] for i in anchors]
    )
    out = model.predict(
        batch["text_features"], batch["video_features"], batch["state_features"], batch["lengths"]
    )
    predicted = out.progress[:, WINDOW["n_obs_steps"]].numpy()
    label = data.schema.progress(targets[ends[eval_eps] - 1])
    return float(predicted.mean()), float(label.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--after", type=int, default=15, help="frames recorded after success")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="data and weight seeds")
    parser.add_argument("--demo", metavar="DIR", help="instead: the demo's own data, written under DIR")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.demo:
        demo(args.demo)
        return
    print("| seed | labels | mean predicted progress at the last frame | its label | s |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        for rule in ("in_last_span", "after_success", "no_after"):
            t0 = time.perf_counter()
            predicted, label = run(rule, args.after, args.steps, args.episodes, seed)
            took = time.perf_counter() - t0
            print(f"| {seed} | {rule} | {predicted:.3f} | {label:.4f} | {took:.0f} |", flush=True)


def demo(out, episodes: int = 60, held_out: int = 12, steps: int = 1500) -> None:
    """The same comparison on `sarm demo`'s own data (pick-place, rendered, the demo's SARM and budget):
    the last span to the last frame (v1) vs. to the first success (v2), final progress of the held-out
    clean successes. About 8 minutes on 2 cores."""
    from pathlib import Path

    from sarm.data import open_dataset
    from sarm.demo.collect import annotation_spans
    from sarm.demo.config import REWARD_MODEL_SIZE, reward_model_config
    from sarm.demo.protocol import DEFAULT_PROTOCOL
    from sarm.demo.record import progress_by_episode, record_dataset
    from sarm.features.encoders import load_encoder
    from sarm.features.extract import extract_features
    from sarm.inference.progress import compute_progress
    from sarm.labels.annotations import read_lerobot_annotations
    from sarm.training.from_cache import train_from_cache

    out = Path(out)
    eps, _ = record_dataset(out / "dataset", "pick-place-v3", list(range(episodes)), DEFAULT_PROTOCOL)
    cache = extract_features(
        open_dataset(out / "dataset"), load_encoder("pixels"), out / "features", progress=False
    )
    train_ids, held = list(range(episodes - held_out)), range(episodes - held_out, episodes)
    clean = [i for i in held if eps[i].mistake is None and eps[i].success]
    bounds = np.cumsum([0] + [len(e.states) for e in eps])
    labels = {
        "in_last_span (v1)": {i: list(zip(*annotation_spans(eps[i].stage), strict=True)) for i in train_ids},
        "after_success (v2)": {
            i: s for i, s in read_lerobot_annotations(out / "dataset").items() if i in train_ids
        },
    }
    print(f"| labels | final progress of {len(clean)} held-out clean successes (mean, min-max) | s |")
    print("|---|---|---|")
    for name, spans in labels.items():
        t0 = time.perf_counter()
        model, _, _ = train_from_cache(
            cache, out / name.split()[0], annotations={"sparse": spans}, episodes=train_ids,
            config=reward_model_config(steps), model_overrides=REWARD_MODEL_SIZE, progress=False,
        )  # fmt: skip
        path = compute_progress(model.eval(), cache, out / f"{name.split()[0]}.parquet", progress=False)
        final = np.array([progress_by_episode(path, bounds)[i][-1] for i in clean])
        took = time.perf_counter() - t0
        print(
            f"| {name} | {final.mean():.3f} ({final.min():.3f}-{final.max():.3f}) | {took:.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
