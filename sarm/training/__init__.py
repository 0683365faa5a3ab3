"""Training a SARM: frame windows, rewind augmentation, the objective, the loop, training from a cache.

`windows` (which frames a sample shows; `WindowDataset`), `rewind` (`RewindCollate`), `objective` (loss,
evaluation), `config` (`TrainConfig`), `loop` (`train`: resume, DDP), `from_cache` (a feature cache +
annotations -> a model) and `synthetic` (staged episodes with known progress, for tests and examples).
"""

from sarm.training.config import TrainConfig
from sarm.training.loop import TrainResult, train
from sarm.training.rewind import RewindCollate
from sarm.training.windows import WindowDataset

__all__ = ["RewindCollate", "TrainConfig", "TrainResult", "WindowDataset", "train"]
