"""Fixed panorama features for the scorer: what classes lie in which direction, how near.

For each of ``SECTORS`` heading sectors of an equirectangular panorama (world-aligned), the
fraction of the sector's pixels of every class, once over all pixels and once over pixels
nearer than ``NEAR`` metres; plus the sector's mean range and its nearest range at eye level
(divided by ``DEPTH_SCALE``). Pooling here keeps the learned part cheap on a CPU: the
scorer's panorama encoder is an MLP on these ``FEATURES`` numbers.
"""

from __future__ import annotations

import numpy as np

from worldsim.envs.navigation.semantics import NUM_CLASSES

SECTORS = 8
NEAR = 2.5
DEPTH_SCALE = 10.0
FEATURES = SECTORS * (2 * NUM_CLASSES + 2)


def panorama_features(semantic: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """semantic (..., H, W) class ids, depth (..., H, W) metres → (..., FEATURES) float32.
    W must be divisible by ``SECTORS``."""
    semantic = np.asarray(semantic)
    depth = np.asarray(depth, np.float32)
    *lead, height, width = semantic.shape
    if width % SECTORS:
        raise ValueError(f"panorama width must be divisible by {SECTORS}, got {width}.")
    semantic = semantic.reshape(-1, height, SECTORS, width // SECTORS).astype(np.int64)
    depth = depth.reshape(-1, height, SECTORS, width // SECTORS)
    count = semantic.shape[0]
    one_hot = np.zeros((count, SECTORS, NUM_CLASSES), np.float32)
    near = np.zeros_like(one_hot)
    pixels = height * (width // SECTORS)
    images = np.arange(count)[:, None, None, None]
    sectors = np.arange(SECTORS)[None, None, :, None]
    np.add.at(one_hot, (images, sectors, semantic), 1.0 / pixels)
    close = (depth < NEAR) & (depth > 0)
    np.add.at(near, (images, sectors, semantic), close / pixels)
    middle = depth[:, height // 2 - max(height // 16, 1): height // 2 + max(height // 16, 1)]
    stats = np.stack([depth.mean(axis=(1, 3)), middle.min(axis=(1, 3))], -1) / DEPTH_SCALE
    features = np.concatenate([one_hot, near, stats], -1).reshape(count, FEATURES)
    return features.reshape(*lead, FEATURES).astype(np.float32)
