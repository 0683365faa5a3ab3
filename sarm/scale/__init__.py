"""Past one machine: `sarm features` and `sarm progress` on Ray (`--engine ray`, the `[ray]` extra).

    from sarm.scale import RayOptions
    from sarm.scale.features import extract_features_ray
    from sarm.scale.progress import compute_progress_ray

Both write the files the local engine writes, byte for byte; see `docs/scale.md`. Ray is imported
only when a Ray session starts, never by `import sarm`.
"""

from sarm.scale.engine import RayOptions

__all__ = ["RayOptions"]
