"""Judge a reward model from its progress file: VOC, success AUROC, the paper's rule, a verdict.

See `sarm.eval.report.evaluate` and `sarm eval`.
"""

from sarm.eval.report import LENGTH_MARGIN, VOC_GOOD, VOC_NOISE, evaluate

__all__ = ["LENGTH_MARGIN", "VOC_GOOD", "VOC_NOISE", "evaluate"]
