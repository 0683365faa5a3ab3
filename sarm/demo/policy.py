"""A chunking MLP policy for the Meta-World benchmark: trained by BC or RA-BC, evaluated in the simulator.

    policy = train_policy(states, actions, episode_index, method="loss", weights=w)  # or "bc", "sampler"
    result = evaluate(policy, "pick-place-v3", rollouts=50, seed=0)
    result["success_rate"]

Every method gets the same network, optimiser, step count and batch size; only the sampling of frames
("sampler": `rabc.RABCWeightedSampler`) or the weighting of their losses ("loss":
`rabc.rabc_weighted_loss`, LeRobot's batch rule) differs from plain BC.

Legend: n frames, b batch, h chunk steps (chunk_size), a action dims (4), o observation dims (39).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from einops import rearrange
from torch import nn

from rabc import RABCWeightedSampler, rabc_weighted_loss

__all__ = ["EVAL_GOAL_SEED", "TRAIN_METHODS", "ChunkPolicy", "chunk_targets", "evaluate", "train_policy"]

TRAIN_METHODS = ("bc", "sampler", "loss")
EVAL_GOAL_SEED = 1 << 31  # MT1 seeds of the evaluation goals start here, far from any demonstration seed
_GOALS_PER_MT1 = 50  # metaworld.MT1 draws 50 goal variations per seed
_STD_FLOOR = 1e-2  # observation std floor: constant dims (padding) and near-constant ones are not blown up


class ChunkPolicy(nn.Module):
    """MLP from a normalised observation (o,) to a chunk of h actions in [-1, 1] (tanh output).

    The observation mean and std are buffers (in the `state_dict`), set by `set_normalization`. The
    weights are initialised from a private generator seeded by `seed` (PyTorch's default `nn.Linear`
    scheme), so building a policy never reads or advances the global RNG.
    """

    def __init__(
        self,
        *,
        obs_dim: int = 39,
        action_dim: int = 4,
        chunk_size: int = 10,
        hidden: int = 256,
        depth: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("obs_dim", obs_dim),
            ("action_dim", action_dim),
            ("chunk_size", chunk_size),
            ("hidden", hidden),
            ("depth", depth),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
        self.obs_dim, self.action_dim, self.chunk_size = obs_dim, action_dim, chunk_size
        widths = [obs_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Linear(w_in, w_out, device="meta"), nn.ReLU()]
        layers.append(nn.Linear(hidden, chunk_size * action_dim, device="meta"))
        self.net = nn.Sequential(*layers).to_empty(device="cpu")  # meta first: no global-RNG init
        generator = torch.Generator().manual_seed(seed)
        for layer in self.net:
            if isinstance(layer, nn.Linear):  # nn.Linear.reset_parameters, with our generator
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_normalization(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Store the dataset's observation mean and std (std floored at 1e-2)."""
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != (self.obs_dim,) or std.shape != (self.obs_dim,):
            raise ValueError(
                f"mean and std should have shape ({self.obs_dim},), but got {tuple(mean.shape)} and "
                f"{tuple(std.shape)}"
            )
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(std.clamp_min(_STD_FLOOR))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(b, o) raw observations -> (b, h, a) actions in [-1, 1]."""
        x = (obs - self.obs_mean) / self.obs_std
        return rearrange(torch.tanh(self.net(x)), "b (h a) -> b h a", h=self.chunk_size)

    @torch.inference_mode()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """One raw observation (o,) -> its action chunk as a float32 numpy array (h, a)."""
        device = self.obs_mean.device
        return self(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0].cpu().numpy()


def chunk_targets(
    actions: np.ndarray, episode_index: np.ndarray, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Action chunk of every frame: targets[i, j] = actions[i + j] within frame i's episode.

    Past the episode's last frame the last action is repeated and `mask[i, j]` is False (True = a real
    action). Frames of an episode must be contiguous and in order. Returns float32 (n, h, a), bool (n, h).
    """
    episode_index = np.asarray(episode_index)
    n = len(episode_index)
    starts = np.flatnonzero(np.r_[True, episode_index[1:] != episode_index[:-1]])
    if len(np.unique(episode_index[starts])) != len(starts):
        raise ValueError(
            "the frames of each episode should be contiguous in episode_index, but some episode appears in "
            "several runs; sort the frames by (episode, frame) first"
        )
    lengths = np.diff(np.r_[starts, n])
    last = np.repeat(starts + lengths - 1, lengths)  # (n,) last frame of each frame's episode
    pos = np.arange(n)[:, None] + np.arange(chunk_size)  # (n, h)
    mask = pos <= last[:, None]
    return np.asarray(actions, dtype=np.float32)[np.minimum(pos, last[:, None])], mask


def _chunk_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE over the valid chunk elements: (b, h, a), (b, h, a), (b, h) -> (b,)."""
    squared = torch.where(mask[..., None], (pred - target) ** 2, 0.0)
    return squared.sum(dim=(1, 2)) / (mask.sum(dim=1) * pred.shape[-1])


def _check_inputs(states, actions, episode_index, method, weights, episodes) -> tuple[np.ndarray, ...]:
    if method not in TRAIN_METHODS:
        raise ValueError(f"method should be one of {TRAIN_METHODS}, but got method={method!r}")
    states, actions = np.asarray(states, np.float32), np.asarray(actions, np.float32)
    episode_index = np.asarray(episode_index, np.int64)
    n = len(episode_index)
    if n == 0 or states.ndim != 2 or actions.ndim != 2 or len(states) != n or len(actions) != n:
        raise ValueError(
            f"states (n, o), actions (n, a) and episode_index (n,) should share n > 0 frames, but got shapes "
            f"{states.shape}, {actions.shape} and {episode_index.shape}"
        )
    keep = np.ones(n, bool)
    if episodes is not None:
        episodes = np.asarray(episodes, np.int64)
        unknown = np.setdiff1d(episodes, episode_index)
        if len(episodes) == 0 or len(unknown):
            raise ValueError(
                f"episodes should be a non-empty subset of the episode ids in episode_index, but got "
                f"{len(episodes)} ids of which {unknown[:5].tolist()} are absent"
            )
        keep = np.isin(episode_index, episodes)
    if method == "bc":
        if weights is not None:
            raise ValueError(
                'weights are used only by method="sampler" or "loss"; pass weights=None for method="bc"'
            )
        return states, actions, episode_index, keep, None
    if weights is None:
        raise ValueError(f"method={method!r} needs per-frame weights: pass weights=... of shape ({n},)")
    weights = np.asarray(weights, np.float64)
    if weights.shape != (n,) or not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(
            f"weights should be ({n},) finite and non-negative, one per frame, but got shape {weights.shape} "
            f"with min {np.min(weights) if weights.size else None}"
        )
    if not weights[keep].sum() > 0:
        raise ValueError("every weight of the training frames is zero; nothing is left to train on")
    return states, actions, episode_index, keep, weights


def _batches(method: str, keep: np.ndarray, weights, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """(steps, b) frame positions: uniform over the kept frames, or drawn by RABCWeightedSampler."""
    if method == "sampler":
        sampler = RABCWeightedSampler(np.where(keep, weights, 0.0), num_samples=steps * batch_size, seed=seed)
        return np.fromiter(sampler, dtype=np.int64, count=len(sampler)).reshape(steps, batch_size)
    frames = np.flatnonzero(keep)
    return frames[np.random.default_rng(seed).integers(0, len(frames), size=(steps, batch_size))]


def train_policy(
    states: np.ndarray,
    actions: np.ndarray,
    episode_index: np.ndarray,
    *,
    method: str,
    weights: np.ndarray | None = None,
    chunk_size: int = 10,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    episodes: np.ndarray | None = None,
    progress_bar: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> ChunkPolicy:
    """Train a `ChunkPolicy` on the frames of one task; sample i = (state i, its action chunk).

    Args:
        states, actions, episode_index: float (n, o), float (n, a) and int (n,) per-frame arrays, the
            frames of each episode contiguous and in order. Actions are clipped to [-1, 1], as the
            Meta-World env clips them (the scripted experts emit larger values).
        method: "bc" (uniform over the frames), "sampler" (frames drawn by
            `RABCWeightedSampler(weights, num_samples=steps * batch_size, seed=seed)`, one epoch with
            replacement) or "loss" (the uniform draws of "bc", losses weighted by
            `rabc_weighted_loss(..., normalize="batch")`; all-one weights reproduce "bc" exactly).
        weights: (n,) non-negative per-frame weights, required by "sampler" and "loss".
        episodes: train only on these episode ids (the clean-only oracle); with weights, frames of
            other episodes get none. Normalisation statistics come from these frames.
        callback: called as `callback(step, loss)` after every optimiser step (e.g. to log the loss).

    Every method uses Adam (lr, no decay), `steps` steps of `batch_size` samples and the MSE over the
    valid chunk elements. The result is a pure function of the inputs and `seed` (private numpy and torch
    generators; the global RNGs are never touched).
    """
    states, actions, episode_index, keep, weights = _check_inputs(
        states, actions, episode_index, method, weights, episodes
    )
    for name, value in (("chunk_size", chunk_size), ("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    targets, mask = chunk_targets(np.clip(actions, -1.0, 1.0), episode_index, chunk_size)
    obs_dim, action_dim = states.shape[1], actions.shape[1]
    policy = ChunkPolicy(obs_dim=obs_dim, action_dim=action_dim, chunk_size=chunk_size, seed=seed)
    policy.set_normalization(states[keep].mean(axis=0), states[keep].std(axis=0))
    batches = torch.from_numpy(_batches(method, keep, weights, steps, batch_size, seed))
    obs_t, targets_t, mask_t = torch.from_numpy(states), torch.from_numpy(targets), torch.from_numpy(mask)
    weights_t = None if weights is None else torch.from_numpy(weights.astype(np.float32))
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    iterator = range(steps)
    if progress_bar:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"train {method}")
    policy.train()
    for step in iterator:
        idx = batches[step]  # (b,)
        losses = _chunk_losses(policy(obs_t[idx]), targets_t[idx], mask_t[idx])  # (b,)
        if method == "loss":
            loss = rabc_weighted_loss(losses, weights_t[idx], normalize="batch")
        else:
            loss = losses.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback(step, loss.item())
    return policy.eval()


def _import_metaworld():
    try:
        import metaworld
    except ImportError as err:
        raise ImportError(
            "evaluate() needs Meta-World: pip install metaworld packaging (state-only rollouts need no "
            "renderer; MUJOCO_GL=egl matters only for rendering)"
        ) from err
    return metaworld


def _evaluation_tasks(metaworld, task: str, rollouts: int, seed: int) -> tuple[type, list]:
    """Env class and goals: block k of 50 goals is MT1(task, seed=EVAL_GOAL_SEED + 1000 * seed + k)."""
    tasks: list = []
    for block in range(math.ceil(rollouts / _GOALS_PER_MT1)):
        mt1 = metaworld.MT1(task, seed=EVAL_GOAL_SEED + 1000 * seed + block)
        tasks += mt1.train_tasks
    return mt1.train_classes[task], tasks[:rollouts]


def evaluate(
    policy: ChunkPolicy,
    task: str,
    *,
    rollouts: int = 50,
    seed: int = 0,
    max_steps: int = 220,
    execute: str | int = "chunk",
    progress_bar: bool | str = False,
) -> dict:
    """Roll `policy` out in Meta-World (state only, no rendering) on goals never used for demonstrations.

    Goals: `metaworld.MT1` has no test goals (its `test_tasks` is empty), so the evaluation goals are the
    `train_tasks` of `MT1(task, seed=EVAL_GOAL_SEED + 1000 * seed + k)` for rollouts 50k..50k+49; the
    demonstrations must use MT1 seeds below `EVAL_GOAL_SEED` (the returned `goals` allow a check).

    Execution: "chunk" (the default) executes all h actions of a chunk, then re-plans: the chunk an
    RA-BC weight scores is the one executed, and on pick-place it was at least as competent as
    "receding" (re-plan every step, execute each chunk's first action), the more so under noisy data;
    an int k executes the first k. A rollout stops at its first success (`info["success"]`) or after
    `max_steps`.

    Returns plain Python values: `success_rate`, `mean_steps` (steps run, the first success included),
    per rollout `successes` (bool), `first_success` (0-based step of the first success, -1 if none),
    `steps`, `goals` (the env's goal vector), and `execute_steps` (k). Deterministic given `seed`.
    `progress_bar` (True, or a label such as the method's name) shows a tqdm bar over the rollouts.
    """
    chunk = policy.chunk_size
    k = {"receding": 1, "chunk": chunk}.get(execute, execute) if isinstance(execute, str) else execute
    if isinstance(k, str) or isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= chunk:
        raise ValueError(
            f'execute should be "receding", "chunk" or an int in [1, {chunk}], but got execute={execute!r}'
        )
    if isinstance(rollouts, bool) or not isinstance(rollouts, int) or not 0 < rollouts <= 50_000:
        raise ValueError(f"rollouts should be an integer in [1, 50000], but got rollouts={rollouts!r}")
    if not 0 <= seed < 1_000_000:
        raise ValueError(f"seed should lie in [0, 1000000) (it selects MT1 goal seeds), but got seed={seed}")
    metaworld = _import_metaworld()
    if task not in metaworld.MT1.ENV_NAMES:
        names = sorted(metaworld.MT1.ENV_NAMES)
        raise ValueError(f"task {task!r} is not a Meta-World v3 task; available: {names}")
    env_class, tasks = _evaluation_tasks(metaworld, task, rollouts, seed)
    if not 0 < max_steps <= env_class.max_path_length:  # the env refuses to step past it (500)
        cap = env_class.max_path_length
        raise ValueError(f"max_steps should lie in [1, {cap}], but got max_steps={max_steps}")
    env = env_class()
    was_training = policy.training
    policy.eval()
    successes, first_success, steps, goals = [], [], [], []
    if progress_bar:
        from tqdm.auto import tqdm

        label = progress_bar if isinstance(progress_bar, str) else "policy"
        tasks = tqdm(tasks, desc=f"rollouts {label}")
    try:
        for goal in tasks:
            env.set_task(goal)
            obs, _ = env.reset()
            goals.append([float(x) for x in env._last_rand_vec])
            first, plan = -1, []
            for t in range(max_steps):
                if not plan:
                    plan = list(policy.act(obs)[:k])
                obs, _, _, _, info = env.step(plan.pop(0))
                if info["success"]:
                    first = t
                    break
            successes.append(first >= 0)
            first_success.append(first)
            steps.append(t + 1)
    finally:
        env.close()
        policy.train(was_training)
    return {
        "success_rate": float(np.mean(successes)),
        "mean_steps": float(np.mean(steps)),
        "successes": successes,
        "first_success": first_success,
        "steps": steps,
        "goals": goals,
        "execute_steps": k,
    }
