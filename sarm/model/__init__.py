"""The SARM network, its configuration and its checkpoints.

`config` (`SARMConfig`), `network` (`SARM`: stage and tau heads over frame, text and state features) and
`hub` (this library's checkpoints and LeRobot's, local or on the Hub).
"""

from sarm.model.config import SARMConfig
from sarm.model.network import SARM, HeadOutput, Prediction

__all__ = ["SARM", "HeadOutput", "Prediction", "SARMConfig"]
