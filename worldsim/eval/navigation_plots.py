"""Pictures of navigation houses: a top-down map with paths, and strips of panoramas.

* ``plot_house_map(scene, path, reference_path)``: rooms coloured by type and labelled, walls
  with their door openings (and the open door leaves), windows, furniture footprints labelled
  by name, the navigation graph, and an episode's reference path (green) and agent path (red,
  start and goal marked).
* ``panorama_strip(panoramas, out)``: one column per viewpoint, rows RGB / semantic classes
  (``SEMANTIC_PALETTE``, fixed per mpcat40 id) / depth ("turbo", near = blue, far = red).
* ``show_house(seed, split, out_dir)``: both pictures for one instruction episode of a house
  (the ``worldsim show-house`` command).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state), so these
functions work headless and inside notebooks alike.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from worldsim.envs.navigation.semantics import CLASS_COLORS, CLASS_IDS, CLASS_NAMES, NUM_CLASSES

ROOM_COLORS: dict[str, str] = {
    "hallway": "#e6e6e6", "kitchen": "#ffd8a8", "dining room": "#ffec99",
    "living room": "#b2f2bb", "bedroom": "#a5d8ff", "bathroom": "#fcc2d7", "office": "#d0bfff",
}
OTHER_ROOM_COLOR = "#f1f3f5"
WALL_COLOR, DOOR_COLOR, WINDOW_COLOR = "#343a40", "#8d5524", "#4dabf7"
GRAPH_COLOR = "#868e96"
REFERENCE_COLOR, AGENT_COLOR = "#2b8a3e", "#e03131"
PANEL_HEIGHT = 0.3  # furniture whose bottom is higher than this (m) hangs on a wall


def _semantic_palette() -> np.ndarray:
    """(NUM_CLASSES, 3) uint8: black for void (0), then matplotlib's tab20 and tab20b colours
    for ids 1–40, white for 41 (``masking``, never rendered)."""
    colors = list(matplotlib.colormaps["tab20"].colors) + list(matplotlib.colormaps["tab20b"].colors)
    table = np.array([(0.0, 0.0, 0.0), *colors[:NUM_CLASSES - 2], (1.0, 1.0, 1.0)])
    return np.round(table * 255).astype(np.uint8)


SEMANTIC_PALETTE = _semantic_palette()


# --- the map ----------------------------------------------------------------------------------

def _rect(low, high, **style) -> Rectangle:
    return Rectangle((low[0], low[1]), high[0] - low[0], high[1] - low[1], **style)


def _door_opening(door, wall: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """(low, high) (x, y) corners of a door's gap in its wall."""
    cx, cy = door.center
    half_along, half_across = door.width / 2, wall / 2
    if door.along_x:
        return (cx - half_along, cy - half_across), (cx + half_along, cy + half_across)
    return (cx - half_across, cy - half_along), (cx + half_across, cy + half_along)


def _draw_plan(axes, house) -> None:
    from worldsim.envs.navigation.house import WALL_THICKNESS

    for room in house.rooms:
        axes.add_patch(_rect(room.low, room.high, facecolor=ROOM_COLORS.get(room.kind, OTHER_ROOM_COLOR),
                             edgecolor="none", zorder=0))
        label_y = room.high[1] - 0.35 if room.index else room.center[1]
        axes.text(room.center[0], label_y, room.kind, ha="center", va="center", fontsize=8,
                  fontweight="bold", color="#343a40", zorder=6,
                  bbox=dict(facecolor="white", alpha=0.65, edgecolor="none", pad=1.0))
    for box in house.boxes:  # full-height wall pieces only: lintels would hide the openings
        if box.semantic == CLASS_IDS["wall"] and box.low[2] <= 0.0:
            axes.add_patch(_rect(box.low, box.high, facecolor=WALL_COLOR, edgecolor="none", zorder=2))
        elif box.semantic == CLASS_IDS["window"]:
            axes.add_patch(_rect(box.low, box.high, facecolor=WINDOW_COLOR, edgecolor=WINDOW_COLOR,
                                 linewidth=1.5, zorder=3))
        elif box.semantic == CLASS_IDS["door"]:  # the open door leaf
            axes.add_patch(_rect(box.low, box.high, facecolor=DOOR_COLOR, edgecolor="none", zorder=3))
    for door in house.doors:
        low, high = _door_opening(door, WALL_THICKNESS)
        axes.add_patch(_rect(low, high, facecolor="white", edgecolor=DOOR_COLOR, linewidth=0.8,
                             linestyle=(0, (2, 1)), zorder=2.5))
    for item in house.furniture:
        name = CLASS_NAMES.get(item.semantic, "")
        color = CLASS_COLORS.get(name, (0.6, 0.6, 0.6))
        on_wall = item.low[2] > PANEL_HEIGHT
        axes.add_patch(_rect(item.low, item.high, facecolor=color, edgecolor="#212529",
                             linewidth=0.5, alpha=0.6 if on_wall else 0.85, zorder=3))
        if not on_wall:
            axes.text(*item.center[:2], item.name, ha="center", va="center", fontsize=5,
                      color="#212529", zorder=6, clip_on=True)


def _xy(scene, nodes) -> np.ndarray:
    return np.array([scene.position(n)[:2] for n in nodes]).reshape(-1, 2)


def _draw_graph(axes, scene) -> None:
    for a, b in scene.graph.edges:
        line = _xy(scene, (a, b))
        axes.plot(line[:, 0], line[:, 1], color=GRAPH_COLOR, linewidth=0.6, alpha=0.8, zorder=4)
    nodes = _xy(scene, sorted(scene.graph.nodes))
    axes.scatter(nodes[:, 0], nodes[:, 1], s=9, color="#495057", zorder=5, linewidths=0)


def _draw_paths(axes, scene, path, reference_path) -> None:
    if reference_path:
        line = _xy(scene, reference_path)
        axes.plot(line[:, 0], line[:, 1], color=REFERENCE_COLOR, linewidth=4.5, alpha=0.7,
                  solid_capstyle="round", zorder=7, label="reference path")
    if path:
        line = _xy(scene, path)
        axes.plot(line[:, 0], line[:, 1], color=AGENT_COLOR, linewidth=1.8, marker="o",
                  markersize=3, zorder=8, label="agent path")
    route = list(path or reference_path or [])
    if route:
        start = _xy(scene, route[:1])[0]
        goal = _xy(scene, (reference_path or route)[-1:])[0]
        axes.scatter(*start, s=90, marker="o", color="white", edgecolors="black", linewidths=1.5,
                     zorder=9, label="start")
        axes.scatter(*goal, s=200, marker="*", color="gold", edgecolors="black", linewidths=1.0,
                     zorder=9, label="goal")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)


def plot_house_map(scene, path: Sequence[int] | None = None,
                   reference_path: Sequence[int] | None = None, out: str | os.PathLike | None = None,
                   title: str | None = None) -> Figure | Path:
    """Top-down map of ``scene`` (a ``HouseScene``), optionally with an episode's paths.

    Args:
      scene: ``worldsim.envs.navigation.scene.load_scene(seed)``.
      path: the agent's viewpoints (node ids), drawn red; the start is marked with a circle.
      reference_path: the episode's reference viewpoints, drawn green under the agent path;
        its last node is the goal (a star). Without it the goal star sits at the path's end.
      out: PNG file to write; None returns the figure instead.
      title: figure title (default: the house seed and its rooms).

    Returns:
      The ``Figure``, or ``Path(out)`` once written.
    """
    house = scene.house
    low, high = house.bounds
    size = high - low
    scale = min(0.55, 11.0 / size[0])
    figure = Figure(figsize=(size[0] * scale + 2.6, size[1] * scale + 1.2), layout="constrained")
    axes = figure.add_subplot()
    _draw_plan(axes, house)
    _draw_graph(axes, scene)
    _draw_paths(axes, scene, path, reference_path)
    margin = 0.4
    axes.set_xlim(low[0] - margin, high[0] + margin)
    axes.set_ylim(low[1] - margin, high[1] + margin)
    axes.set_aspect("equal")
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    default = f"house {house.seed}: {len(house.rooms) - 1} rooms, {scene.graph.number_of_nodes()} viewpoints"
    axes.set_title(title or default, fontsize=9, loc="left")
    if out is None:
        return figure
    return _save_figure(figure, out)


def _save_figure(figure: Figure, out: str | os.PathLike) -> Path:
    """Writes via a temporary name, then renames (no half-written PNG under ``out``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    figure.savefig(tmp, dpi=150, format="png")
    os.replace(tmp, out)
    return out


# --- panoramas --------------------------------------------------------------------------------

def semantic_colors(semantic: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours of an (H, W) mpcat40 id map (``SEMANTIC_PALETTE``)."""
    return SEMANTIC_PALETTE[np.clip(np.asarray(semantic, np.int64), 0, NUM_CLASSES - 1)]


def depth_colors(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """(H, W, 3) uint8: ``sqrt(depth / max_depth)`` through the "turbo" map (near = blue,
    ``max_depth`` and beyond = dark red; the square root spreads the near range); misses
    (depth 0) black."""
    depth = np.asarray(depth, np.float64)
    scaled = np.sqrt(np.clip(depth / max(max_depth, 1e-6), 0.0, 1.0))
    rgb = matplotlib.colormaps["turbo"](scaled)[..., :3]
    rgb[depth <= 0] = 0.0
    return np.round(rgb * 255).astype(np.uint8)


def panorama_strip(panoramas: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
                   out: str | os.PathLike | None = None, gap: int = 4,
                   max_depth: float | None = None) -> np.ndarray:
    """One image of one or several viewpoints: a column each, rows RGB / semantic / depth.

    Args:
      panoramas: a dict with ``rgb`` (H, W, 3) uint8, ``semantic`` (H, W) and ``depth``
        (H, W) metres (``HouseScene.panorama`` or an env observation), or a list of them.
      out: PNG file to write (imageio); None only returns the image.
      gap: white pixels between panels.
      max_depth: metres mapped to the far end of the depth colours (default: the largest
        depth among the panoramas, so the columns share one scale).

    Returns:
      The (3H + 2·gap, n·W + (n−1)·gap, 3) uint8 image.
    """
    if isinstance(panoramas, Mapping):
        panoramas = [panoramas]
    if not panoramas:
        raise ValueError("panorama_strip needs at least one panorama.")
    shapes = {np.shape(p["rgb"]) for p in panoramas}
    if len(shapes) != 1:
        raise ValueError(f"panoramas must share one size, got RGB shapes {sorted(shapes)}.")
    if max_depth is None:
        max_depth = max(float(np.max(p["depth"])) for p in panoramas)
    height, width, _ = shapes.pop()
    image = np.full((3 * height + 2 * gap, len(panoramas) * (width + gap) - gap, 3), 255, np.uint8)
    for column, panorama in enumerate(panoramas):
        x = column * (width + gap)
        rows = (np.asarray(panorama["rgb"], np.uint8), semantic_colors(panorama["semantic"]),
                depth_colors(panorama["depth"], max_depth))
        for row, panel in enumerate(rows):
            y = row * (height + gap)
            image[y:y + height, x:x + width] = panel
    if out is not None:
        import imageio.v3 as iio

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
        iio.imwrite(tmp, image, extension=".png")
        os.replace(tmp, out)
    return image


# --- one house, one episode (worldsim show-house) ---------------------------------------------

def show_house(seed: int, split: str = "train", out_dir: str | os.PathLike = ".",
               episode_seed: int = 0, panorama_size: tuple[int, int] = (128, 256)) -> list[Path]:
    """Writes ``house_<seed>_map.png`` (the map with one instruction episode's reference path,
    the instruction as title) and ``house_<seed>_panoramas.png`` (start, middle and goal
    viewpoints of that episode) into ``out_dir``; returns both paths.

    The episode is the one ``worldsim/IndoorNav-v0`` gives for reset seed ``episode_seed`` in
    this house. Raises ValueError when ``seed`` is not one of ``split``'s houses.
    """
    from worldsim.envs.navigation.env import IndoorNavEnv
    from worldsim.envs.navigation.scene import check_house_seed

    seed = check_house_seed(split, seed)
    height, width = (int(v) for v in panorama_size)
    env = IndoorNavEnv("instruction", split=split, house_seed=seed, panorama_size=(height, width))
    _, info = env.reset(seed=episode_seed)
    scene, episode = env.scene, env.episode
    reference = list(episode.reference_path)
    instruction = episode.instructions[0]
    out_dir = Path(out_dir)
    heading = (f"house {seed} ({split}), episode seed {episode_seed}: "
               f"{len(reference)} viewpoints, {info['distance_to_goal']:.1f} m")
    title = heading + "\n" + textwrap.fill(f"“{instruction}”", width=90)
    map_path = plot_house_map(scene, reference_path=reference, title=title,
                              out=out_dir / f"house_{seed}_map.png")
    views = [reference[0], reference[len(reference) // 2], reference[-1]]
    strip_path = out_dir / f"house_{seed}_panoramas.png"
    panorama_strip([scene.panorama(node, height, width) for node in views], strip_path)
    return [map_path, strip_path]
