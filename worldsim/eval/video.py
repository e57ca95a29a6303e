"""Rollout videos: render an episode with ``env.render()`` and write it as MP4 (or GIF).

    >>> episode = render_episode(gymnasium.make(env_id, render_mode="rgb_array"), policy, seed=0)
    >>> write_video(episode.frames, "runs/demo/videos/blockpush_seed0.mp4", fps=episode.fps)
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import gymnasium
import numpy as np

DEFAULT_FPS = 10


@dataclasses.dataclass
class RenderedEpisode:
    """frames: T+1 (H, W, 3) uint8 images (after the reset and after every step);
    success: ``info["is_success"]`` at any step; fps: the env's ``render_fps``; seed: reset seed."""

    frames: list[np.ndarray]
    success: bool
    fps: int
    seed: int


def render_episode(env: gymnasium.Env, policy, seed: int) -> RenderedEpisode:
    """Runs one seeded episode of ``policy`` (``reset()``, ``act(obs)``) in ``env``, which must
    have ``render_mode="rgb_array"``; the caller owns (and closes) the env."""
    obs, info = env.reset(seed=seed)
    policy.reset()
    frames, success, done = [env.render()], bool(info.get("is_success", False)), False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        frames.append(env.render())
        success = success or bool(info.get("is_success", False))
        done = terminated or truncated
    fps = int(env.metadata.get("render_fps") or DEFAULT_FPS)
    return RenderedEpisode(frames, success, fps, seed)


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike,
                fps: int = DEFAULT_FPS) -> Path:
    """Writes (H, W, 3) uint8 ``frames`` to ``path`` (.mp4 via ffmpeg, or .gif) at ``fps``.

    The file is written under a temporary name in the same folder and renamed when complete,
    so a half-written video never has the final name. Returns the path.
    """
    import imageio.v2 as imageio

    path = Path(path)
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"unsupported video file {path}: use a .mp4 or .gif name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        images = [np.asarray(f, dtype=np.uint8) for f in frames]
        if path.suffix.lower() == ".gif":
            imageio.mimsave(tmp, images, duration=1000.0 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, fps=fps, macro_block_size=2) as writer:
                for image in images:
                    writer.append_data(image)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
