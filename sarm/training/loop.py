"""Train a SARM on feature windows: AdamW, warmup + cosine, clipping, evaluation, checkpoints, exact resume.

    result = train(model, train_windows, task_features=..., out_dir="runs/sarm", eval_set=eval_windows,
                   config=TrainConfig(steps=20_000))

Data order is a pure function of the seed: the loader walks an endless stream of epochs, epoch e being
a permutation seeded by (seed, e), and sample p of the stream has key p, which seeds its rewind and
language-negative coins (`RewindCollate`) and its teacher-forcing coin. Resuming at step s therefore
starts at stream position s * batch_size * world_size with nothing replayed; with the optimizer,
scheduler and dropout RNG restored, a resumed run reproduces an uninterrupted one.

`out_dir` holds `checkpoint/` (model + `train_state.pt`, replaced atomically), `metrics.jsonl`, the
final `model/` and, with an eval set, `best/` (lowest demo MSE). Under `torchrun` each rank trains on
its own slice of every global batch through DistributedDataParallel; rank 0 evaluates and writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from sarm.model.hub import save_pretrained
from sarm.model.network import SARM
from sarm.training.config import TrainConfig
from sarm.training.objective import evaluate, sarm_loss
from sarm.training.resume import check_run, data_facts
from sarm.training.rewind import RewindCollate
from sarm.training.windows import WindowDataset

__all__ = ["TrainConfig", "TrainResult", "train"]


@dataclass
class TrainResult:
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, float] = field(default_factory=dict)
    model_dir: Path | None = None
    best_dir: Path | None = None


class _Stream(Dataset):
    """Position p of an endless stream of epochs -> a window, with key p (unique across epochs)."""

    def __init__(self, windows: WindowDataset, seed: int):
        self.windows, self.seed, self._perm = windows, seed, (None, None)

    def __len__(self) -> int:
        return len(self.windows)

    def _order(self, epoch: int) -> np.ndarray:
        if self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.windows)))
        return self._perm[1]

    def __getitem__(self, position: int) -> dict[str, Any]:
        epoch, offset = divmod(position, len(self.windows))
        item = self.windows[int(self._order(epoch)[offset])]
        item["key"] = position
        return item


class _Positions(Sampler[int]):
    """This rank's stream positions for steps [start, stop): a contiguous slice of each global batch."""

    def __init__(self, start: int, stop: int, batch_size: int, world: int, rank: int):
        self.start, self.stop, self.batch_size, self.world, self.rank = start, stop, batch_size, world, rank

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch_size

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether we initialised the process group) from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if torch.cuda.is_available():  # NCCL collectives use the current device: one GPU per rank
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def _write_checkpoint(out_dir: Path, model: SARM, state: dict[str, Any]) -> None:
    """Write checkpoint/ next to the old one and swap, so a kill leaves one complete checkpoint."""
    final, tmp, old = out_dir / "checkpoint", out_dir / ".checkpoint-tmp", out_dir / ".checkpoint-old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp, model_card=False)
    torch.save(state, tmp / "train_state.pt")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    _write_history(out_dir, state["history"])


def _write_history(out_dir: Path, history: list[dict[str, Any]]) -> None:
    tmp = out_dir / ".metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    os.replace(tmp, out_dir / "metrics.jsonl")


def _read_checkpoint(out_dir: Path) -> Path | None:
    for candidate in (out_dir / "checkpoint", out_dir / ".checkpoint-old"):  # old: killed mid-swap
        if (candidate / "train_state.pt").is_file():
            return candidate
    return None


def _check_windows(model: SARM, windows: WindowDataset, name: str) -> None:
    """Windows must be the ones the model's config describes (they are saved with the model)."""
    c = model.config
    pairs = [
        ("window", c.window, windows.mode),
        ("n_obs_steps", c.n_obs_steps, windows.n_obs_steps),
        ("frame_gap", c.frame_gap, windows.frame_gap),
        ("max_rewind_steps", c.max_rewind_steps, windows.max_rewind_steps),
    ]
    wrong = [f"{field}: model {a!r} vs {name} {b!r}" for field, a, b in pairs if a != b]
    if wrong:
        raise ValueError(
            f"{name} does not match the model's config ({'; '.join(wrong)}); build the WindowDataset with "
            "mode=config.window, n_obs_steps, frame_gap and max_rewind_steps from model.config"
        )


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    model: SARM,
    train_set: WindowDataset,
    *,
    task_features: dict[str, torch.Tensor],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    eval_set: WindowDataset | None = None,
    negative_text_features: torch.Tensor | None = None,
    negative_texts: list[str] | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    extend: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    option_names: dict[str, str] | None = None,
) -> TrainResult:
    """Train `model` in place on `train_set` windows; see the module docstring for files and resume.

    `task_features` maps every task text to its text feature; `negative_text_features` (M, E) are texts
    that match no task (needed for language negatives when there is only one task). `stop_after` ends
    this run after that many steps (a time-limited job), leaving a checkpoint to resume from.
    Dropout draws from torch's RNG: training seeds it from `config.seed` and checkpoints it, inside
    `torch.random.fork_rng`, so the caller's RNG state is the same before and after.

    Resuming a run (`resume=True` and a checkpoint in `out_dir`) needs the run's model config,
    TrainConfig and training windows; anything else is refused before anything is written, naming each
    differing setting. `extend=True` lets a run (finished or not) continue to a larger `config.steps`:
    the cosine schedule is then recomputed for the new total from the current step (the learning rate
    rises from where the old schedule stood). `option_names` maps argument names to what the caller's
    user typed (the CLI passes {"resume": "--no-resume", "frame_gap": "--frame-gap", ...}) for errors.
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    names = {"resume": "resume=False", "extend": "extend=True", "steps": "config.steps"}
    names.update(option_names or {})
    _check_windows(model, train_set, "train_set")
    if eval_set is not None:
        _check_windows(model, eval_set, "eval_set")
    data = data_facts(train_set)
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        rank, world, owns_group = _distributed()
        found = _read_checkpoint(out_dir) if resume else None
        state = None
        if found is not None:  # checked before anything is written or loaded into the model
            state = check_run(found, model, config, data, world, extend=extend, names=names)
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
        model.to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: config.learning_rate(s) / config.lr
        )
        torch.manual_seed(config.seed * 1000 + rank)  # dropout's RNG (forked by train); checkpointed below
        step, history, best = 0, [], math.inf
        if state is not None:
            model.load_state_dict(SARM.from_pretrained(found).state_dict())
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"][rank], device)
            step, history, best = state["step"], state["history"], state["best"]
            if state["config"]["steps"] != config.steps:  # extended: follow the new schedule from here
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate(step)
        ddp = model
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        collate = RewindCollate(
            task_features,
            negative_text_features=negative_text_features,
            negative_texts=negative_texts,
            rewind_probability=config.rewind_probability,
            language_negative_probability=config.language_negative_probability,
            seed=config.seed,
        )
        stop = config.steps if stop_after is None else min(config.steps, step + stop_after)
        loader = DataLoader(
            _Stream(train_set, config.seed),
            batch_size=config.batch_size,
            collate_fn=collate,
            sampler=_Positions(step, stop, config.batch_size, world, rank),
            num_workers=config.num_workers,
            generator=torch.Generator().manual_seed(config.seed),  # else the loader draws from the global RNG
        )
        eval_loader = None
        if eval_set is not None:
            clean = RewindCollate(task_features, rewind_probability=0.0, language_negative_probability=0.0)
            eval_loader = DataLoader(eval_set, batch_size=config.eval_batch_size, collate_fn=clean)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda")
        result = TrainResult(step=step, history=history)
        bar = tqdm(total=config.steps, initial=step, desc="sarm train", disable=not progress or rank != 0)
        model.train()
        for batch in loader:
            with autocast:
                loss, stats = sarm_loss(
                    ddp,
                    batch,
                    teacher_forcing=config.teacher_forcing,
                    seed=config.seed,
                    masked=config.masked_loss,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
            if step % config.log_every == 0 or step == stop:
                history.append(
                    {
                        "step": step,
                        "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": float(grad_norm),
                        **stats,
                    }
                )
            last = step == config.steps
            if rank == 0 and eval_loader is not None and (step % config.eval_every == 0 or last):
                result.eval = evaluate(model, eval_loader, current_slot=eval_set.current_slot)
                history.append({"step": step, **{f"eval/{k}": v for k, v in result.eval.items()}})
                score = result.eval.get("sparse/demo_mse", math.inf)
                if score < best:
                    best = score
                    result.best_dir = save_pretrained(model, out_dir / "best")
                model.train()
            if step % config.checkpoint_every == 0 or step == stop:
                rng = [_rng_state(device)]
                if world > 1:
                    gathered = [None] * world
                    dist.all_gather_object(gathered, rng[0])
                    rng = gathered
                if rank == 0:
                    _write_checkpoint(
                        out_dir,
                        model,
                        {
                            "step": step,
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "rng": rng,
                            "history": history,
                            "best": best,
                            "config": dataclasses.asdict(config),
                            "world_size": world,
                            "data": data,
                        },
                    )
        bar.close()
        result.step = step
        if rank == 0 and step == config.steps:
            result.model_dir = save_pretrained(model, out_dir / "model")
            model.source = str(result.model_dir)
            _write_history(out_dir, history)
        if world > 1:
            dist.barrier()
        if owns_group:
            dist.destroy_process_group()
        return result
