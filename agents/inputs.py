"""Turning observation windows into model inputs, the same way in training and acting.

A window is ``{key: (B, T, ...)}``. State keys are z-scored with the run's normalisation and
flattened time-major into ``obs`` (B, T·D); an image key (uint8 (B, T, H, W, C)) has its frames
stacked on channels into ``images`` (B, H, W, T·C), left as uint8.
"""

from __future__ import annotations

import numpy as np

from worldsim.data.windows import NormalizationStats, flat_observation

IMAGE_KEY = "rgb"


def model_inputs(window: dict[str, np.ndarray], state_keys: list[str], use_images: bool,
                 normalization: NormalizationStats | None = None) -> dict[str, np.ndarray]:
    """{"obs": (B, T·D) float32, ["images": (B, H, W, T·C) uint8]} from a raw or normalised window.

    Pass ``normalization`` for raw env observations; leave it None for windows that the
    dataset loader already normalised.
    """
    states = {k: window[k] for k in state_keys}
    if normalization is not None:
        states = normalization.normalize_observations(states)
    inputs = {}
    if state_keys:
        inputs["obs"] = flat_observation(states, state_keys)
    if use_images:
        frames = np.asarray(window[IMAGE_KEY])  # (B, T, H, W, C)
        b, t, h, w, c = frames.shape
        inputs["images"] = frames.transpose(0, 2, 3, 1, 4).reshape(b, h, w, t * c)
    return inputs


class ObservationHistory:
    """The last T observations of each of B environments; a reset tiles the first observation
    over the window (as the dataset pads episode starts)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.frames: dict[str, np.ndarray] | None = None  # {key: (B, T, ...)}

    def reset(self, observations: dict[str, np.ndarray], mask: np.ndarray | None = None) -> None:
        """Starts fresh windows from batched ``observations`` {key: (B, ...)} where ``mask``."""
        tiled = {k: np.repeat(np.asarray(v)[:, None], self.window, axis=1)
                 for k, v in observations.items()}
        if self.frames is None or mask is None:
            self.frames = tiled
        else:
            for k in self.frames:
                self.frames[k][mask] = tiled[k][mask]

    def push(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Appends one step {key: (B, ...)}; returns the windows {key: (B, T, ...)}."""
        if self.frames is None:
            self.reset(observations)
        else:
            for k, v in observations.items():
                self.frames[k] = np.concatenate([self.frames[k][:, 1:], np.asarray(v)[:, None]], 1)
        return self.frames
