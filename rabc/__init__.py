"""Reward-Aligned Behaviour Cloning: per-frame weights from task progress, for any trainer.

    from rabc import RABCWeights, RABCWeightedSampler, RABCLoss
    w = RABCWeights.from_progress("sarm_progress.parquet", chunk_size=50, kappa="auto")
    sampler = RABCWeightedSampler(w, seed=0)                                 # skip low-progress chunks
    loss_fn = RABCLoss(torch.nn.MSELoss(reduction="none"), weights=w)       # or weight each sample's loss

`rabc` reads any progress file in LeRobot's `sarm_progress.parquet` schema; it never imports `sarm`.
"""

from rabc.diagnostics import Diagnosis, diagnose
from rabc.loss import RABCLoss, rabc_weighted_loss
from rabc.progress_io import ProgressTable, read_progress, write_progress
from rabc.sampler import RABCWeightedSampler
from rabc.weights import RABCWeights

__all__ = [
    "Diagnosis",
    "ProgressTable",
    "RABCLoss",
    "RABCWeightedSampler",
    "RABCWeights",
    "diagnose",
    "rabc_weighted_loss",
    "read_progress",
    "write_progress",
]
