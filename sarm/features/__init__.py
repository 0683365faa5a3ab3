"""Per-frame features: encoders (CLIP via open_clip, an offline pixel encoder) and the feature cache.

Every frame is decoded and encoded once into the cache; training (`sarm.training.from_cache`) and
progress inference (`sarm.inference`) read it. open_clip is imported only when a CLIP encoder is loaded.
"""

from sarm.features.cache import FeatureCache
from sarm.features.encoders import DEFAULT_ENCODER, load_encoder
from sarm.features.extract import extract_features

__all__ = ["DEFAULT_ENCODER", "FeatureCache", "extract_features", "load_encoder"]
