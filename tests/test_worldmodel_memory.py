"""The world model's point-cloud memory and its JAX re-projection."""

import os

import numpy as np
import pytest

from worldsim.envs.navigation.geometry import make_box
from worldsim.envs.navigation.render import (
    HouseRenderer, equirectangular_directions, pinhole_directions)
from worldsim.envs.navigation.scene import load_scene
from worldsim.envs.navigation.semantics import CLASS_IDS
from worldsim.worldmodel.memory import OBSERVED, PREDICTED, PointCloudMemory, back_project
from worldsim.worldmodel.reproject import (
    atan2, occlusion_filter, pad_points, reproject_equirectangular, reproject_pinhole)

H, W = 64, 128
ORIGIN = np.array([0.5, -0.25, 1.5])


def _numpy(out):
    return {key: np.asarray(value) for key, value in out.items()}


def _project(memory, position, height=H, width=W, **kwargs):
    return _numpy(reproject_equirectangular(memory.points, memory.colors, memory.labels,
                                            position, height, width, **kwargs))


def _house_pano(node_index=0, height=H, width=W):
    scene = load_scene(100_000)
    node = sorted(scene.graph.nodes)[node_index]
    return scene.panorama(node, height, width), scene.position(node)


def _known_room(east_wall_class):
    """A 6 × 4 m room, 3 m high, inner faces at x = ±2.95, y = ±1.95, z = 0 and 3."""
    wall, floor, ceiling = CLASS_IDS["wall"], CLASS_IDS["floor"], CLASS_IDS["ceiling"]
    grey = (0.5, 0.5, 0.5)
    return [
        make_box((-3.05, -2.05, 0), (-2.95, 2.05, 3), wall, grey),
        make_box((2.95, -2.05, 0), (3.05, 2.05, 3), east_wall_class, (0.8, 0.3, 0.2)),
        make_box((-3.05, -2.05, 0), (3.05, -1.95, 3), wall, grey),
        make_box((-3.05, 1.95, 0), (3.05, 2.05, 3), wall, grey),
        make_box((-3.05, -2.05, -0.05), (3.05, 2.05, 0), floor, grey),
        make_box((-3.05, -2.05, 3), (3.05, 2.05, 3.05), ceiling, grey),
    ]


# (a) ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("voxel_size", [None, 0.005])
def test_reprojection_at_the_same_pose_gives_the_observation_back(voxel_size):
    pano, position = _house_pano()
    memory = PointCloudMemory(voxel_size=voxel_size)
    memory.add(pano["rgb"], pano["semantic"], pano["depth"], position)
    out = _project(memory, position)
    valid = (pano["depth"] > 0) & (pano["depth"] < 10)
    exact = (out["mask"] & np.all(out["rgb"] == pano["rgb"], axis=-1)
             & (out["semantic"] == pano["semantic"])
             & (np.abs(out["depth"] - pano["depth"]) <= 1e-3 * pano["depth"]))
    assert exact[valid].mean() >= 0.95
    assert not out["mask"][~valid].any()
    if voxel_size is None:
        assert len(memory) == valid.sum() and exact[valid].all()


def test_pinhole_reprojection_inverts_the_renderers_pinhole_rays():
    renderer = HouseRenderer(_known_room(CLASS_IDS["door"]))
    heading, fov = 0.7, 75.0
    image = renderer.pinhole(ORIGIN, heading, 24, 32, fov)
    points = ORIGIN + pinhole_directions(heading, 24, 32, fov) * image["depth"][..., None]
    out = _numpy(reproject_pinhole(points.reshape(-1, 3), image["rgb"].reshape(-1, 3),
                                   image["semantic"].reshape(-1), ORIGIN, heading, fov, 24, 32))
    assert out["mask"].all()
    np.testing.assert_array_equal(out["rgb"], image["rgb"])
    np.testing.assert_array_equal(out["semantic"], image["semantic"])
    np.testing.assert_allclose(out["depth"], image["depth"], rtol=1e-5)


# (b) ---------------------------------------------------------------------------------------
def test_known_planes_back_project_onto_themselves():
    east = CLASS_IDS["door"]
    renderer = HouseRenderer(_known_room(east))
    for origin in (ORIGIN, np.array([-1.0, 0.8, 1.2])):
        pano = renderer.panorama(origin, 32, 64)
        points = back_project(pano["depth"], origin)
        classes = pano["semantic"][pano["depth"] > 0]
        assert len(points) == 32 * 64  # a closed room: every ray hits
        east_points = points[classes == east]
        floor_points = points[classes == CLASS_IDS["floor"]]
        assert len(east_points) > 50 and len(floor_points) > 50
        assert np.abs(east_points[:, 0] - 2.95).max() < 1e-3
        assert np.abs(floor_points[:, 2]).max() < 1e-3


# (c) ---------------------------------------------------------------------------------------
def _ray(row, column, height=H, width=W):
    return equirectangular_directions(height, width)[row, column].astype(np.float64)


@pytest.mark.parametrize("far_first", [True, False])
def test_nearer_point_wins_with_its_own_colour_and_class(far_first):
    ray = _ray(20, 37)
    near = (ORIGIN + 1.0 * ray, (10, 20, 30), 1)
    far = (ORIGIN + 2.0 * ray, (250, 250, 250), 40)  # brighter and a larger class id
    pair = [far, near] if far_first else [near, far]
    out = _numpy(reproject_equirectangular(
        np.array([p for p, _, _ in pair]), np.array([c for _, c, _ in pair], np.uint8),
        np.array([k for _, _, k in pair], np.uint8), ORIGIN, H, W))
    assert out["mask"].sum() == 1 and out["mask"][20, 37]
    assert tuple(out["rgb"][20, 37]) == (10, 20, 30)
    assert out["semantic"][20, 37] == 1
    assert abs(out["depth"][20, 37] - 1.0) < 1e-5


def test_equal_ranges_the_smaller_index_wins():
    point = ORIGIN + 1.5 * _ray(40, 100)
    points = np.array([point, point, point])
    labels = np.array([9, 3, 30], np.uint8)
    valid = np.array([False, True, True])  # index 0 is padding: it never wins
    for colors, winner in ((np.array([(9, 9, 9), (200, 0, 0), (0, 200, 0)], np.uint8), 1),
                           (np.array([(9, 9, 9), (0, 200, 0), (200, 0, 0)], np.uint8), 1)):
        for _ in range(2):  # and the same answer every time
            out = _numpy(reproject_equirectangular(points, colors, labels, ORIGIN, H, W, valid=valid))
            assert tuple(out["rgb"][40, 100]) == tuple(colors[winner])
            assert out["semantic"][40, 100] == labels[winner]
        labels = labels[[0, 2, 1]]  # swap the tied points: the one now at index 1 wins


# (d) ---------------------------------------------------------------------------------------
def test_invalid_points_are_dropped_and_pixel_zero_stays_empty():
    good = ORIGIN + 2.0 * _ray(30, 60)
    points = np.array([
        good,
        ORIGIN + 12.0 * _ray(30, 61),  # beyond max_range
        ORIGIN,  # at the camera
        [np.nan, 0.0, 1.0],
        [np.inf, 0.0, 1.0],
        ORIGIN + 1.0 * _ray(0, 0),  # would be pixel (0, 0), but marked invalid
    ])
    colors = np.full((6, 3), 255, np.uint8)
    labels = np.arange(1, 7, dtype=np.uint8)
    valid = np.array([True, True, True, True, True, False])
    out = _numpy(reproject_equirectangular(points, colors, labels, ORIGIN, H, W, valid=valid))
    assert out["mask"].sum() == 1 and out["mask"][30, 60] and out["semantic"][30, 60] == 1
    assert not out["mask"][0, 0] and out["semantic"][0, 0] == 0 and out["depth"][0, 0] == 0
    assert not out["rgb"][0, 0].any()

    # Pinhole: behind the camera and outside the field of view are dropped as well.
    behind, aside = ORIGIN + np.array([-2.0, 0.0, 0.0]), ORIGIN + np.array([1.0, 3.0, 0.0])
    ahead = ORIGIN + np.array([2.0, 0.0, 0.0])
    out = _numpy(reproject_pinhole(np.array([behind, aside, ahead]), np.full((3, 3), 7, np.uint8),
                                   np.array([5, 6, 2], np.uint8), ORIGIN, 0.0, 90.0, 16, 16))
    assert out["mask"].sum() == 1 and out["mask"][8, 8] and out["semantic"][8, 8] == 2
    assert not out["mask"][0, 0]


def test_polynomial_atan2_matches_numpy():
    rng = np.random.default_rng(1)
    y, x = rng.normal(size=(2, 20_000)).astype(np.float32) * rng.choice([1e-3, 1.0, 1e3], size=(2, 20_000))
    edges = np.array([0.0, 0.0, 1.0, -1.0, 1.0, -1.0, 0.0, 2.0], np.float32)
    y, x = np.concatenate([y, edges]), np.concatenate([x, np.roll(edges, 1)])
    ours = np.asarray(atan2(y, x)).astype(np.float64)
    assert np.abs(ours - np.arctan2(y.astype(np.float64), x.astype(np.float64))).max() < 5e-7


def test_straight_down_and_wrapping_headings_land_on_edge_pixels():
    eps = 1e-7  # heading 2π − ε: the last column, even if 2π·W/2π rounds to W (wraps to 0)
    heading = 2 * np.pi - eps
    direction = np.array([np.cos(1.5 * np.pi - heading), np.sin(1.5 * np.pi - heading), 0.0])
    points = np.array([ORIGIN + [0.0, 0.0, -1.0], ORIGIN + 2.0 * direction])
    out = _numpy(reproject_equirectangular(points, np.ones((2, 3), np.uint8),
                                           np.array([4, 5], np.uint8), ORIGIN, H, W))
    assert out["mask"].sum() == 2
    assert out["semantic"][H - 1].max() == 4  # polar = π is the last row
    assert out["semantic"][H // 2, W - 1] == 5 or out["semantic"][H // 2, 0] == 5


# (e) ---------------------------------------------------------------------------------------
def test_voxel_rule_latest_wins_and_predictions_never_replace_observations():
    pano, position = _house_pano(height=32, width=64)
    rgb, depth = pano["rgb"], pano["depth"]
    three, five, seven = (np.full(depth.shape, k, np.uint8) for k in (3, 5, 7))

    memory = PointCloudMemory(voxel_size=0.05)
    memory.add(rgb, three, depth, position)
    count = len(memory)
    memory.add(rgb, five, depth, position)  # same points, same voxels: latest wins
    assert len(memory) == count and set(memory.labels.tolist()) == {5}
    memory.add(rgb, seven, depth, position, source="predicted")  # never replaces observed
    assert len(memory) == count and set(memory.labels.tolist()) == {5}
    assert (memory.sources == OBSERVED).all()

    predicted_first = PointCloudMemory(voxel_size=0.05)
    predicted_first.add(rgb, seven, depth, position, source="predicted")
    predicted_first.add(rgb, three, depth, position, source="predicted")
    assert set(predicted_first.labels.tolist()) == {3} and (predicted_first.sources == PREDICTED).all()
    predicted_first.add(rgb, five, depth, position)  # observed replaces predicted
    assert set(predicted_first.labels.tolist()) == {5} and (predicted_first.sources == OBSERVED).all()

    # Real, mixed labels: one point per voxel, labels only from the input set (no averages).
    mixed = PointCloudMemory(voxel_size=0.2)
    mixed.add(rgb, pano["semantic"], depth, position)
    keys = np.floor(mixed.points / 0.2).astype(np.int64)
    assert len(np.unique(keys, axis=0)) == len(mixed) < (depth > 0).sum()
    assert set(mixed.labels.tolist()) <= set(np.unique(pano["semantic"]).tolist())
    assert mixed.labels.dtype == np.uint8 and mixed.colors.dtype == np.uint8


def test_max_points_drops_predicted_and_older_points_first():
    pano, position = _house_pano(height=32, width=64)
    memory = PointCloudMemory(voxel_size=None, max_points=100)
    memory.add(pano["rgb"], pano["semantic"], pano["depth"], position)
    memory.add(pano["rgb"], pano["semantic"], pano["depth"] * 0.9, position, source="predicted")
    assert len(memory) == 100 and (memory.sources == OBSERVED).all()
    mask = np.zeros(pano["depth"].shape, bool)
    mask[10, :30] = True  # 30 new observed pixels: the 30 oldest observed points go
    oldest_kept = memory.points[30].copy()
    memory.add(pano["rgb"], pano["semantic"], pano["depth"] * 0.8, position, mask=mask)
    assert len(memory) == 100
    np.testing.assert_array_equal(memory.points[0], oldest_kept)


# (f) ---------------------------------------------------------------------------------------
def test_ply_round_trip_is_exact(tmp_path):
    pano, position = _house_pano(height=32, width=64)
    memory = PointCloudMemory(voxel_size=0.05)
    memory.add(pano["rgb"], pano["semantic"], pano["depth"], position)
    memory.add(pano["rgb"], pano["semantic"], pano["depth"], position + [0.7, 0.0, 0.0], source="predicted")
    assert set(memory.sources.tolist()) == {OBSERVED, PREDICTED}
    path = tmp_path / "memory.ply"
    memory.to_ply(path)
    assert os.listdir(tmp_path) == ["memory.ply"]  # the temporary file was renamed
    loaded = PointCloudMemory.from_ply(path, voxel_size=0.05)
    for name in ("points", "colors", "labels", "sources"):
        original, read = getattr(memory, name), getattr(loaded, name)
        assert read.dtype == original.dtype
        np.testing.assert_array_equal(read, original)


# (g) ---------------------------------------------------------------------------------------
def test_two_viewpoints_see_more_of_a_third_pose_than_either_alone():
    scene = load_scene(100_000)
    nodes = sorted(scene.graph.nodes)
    a, c = nodes[0], nodes[1]
    b = next(n for n in scene.graph.neighbors(c) if n != a)
    query = scene.position(c)

    def project(points, colors, labels):  # one fixed capacity: one compilation for all calls
        padded = pad_points(points, colors, labels, capacity=2 * H * W)
        return _numpy(reproject_equirectangular(padded["points"], padded["colors"], padded["labels"],
                                                query, H, W, valid=padded["valid"]))

    seen = {}
    both = PointCloudMemory(voxel_size=0.02)
    for name, node in (("a", a), ("b", b)):
        pano = scene.panorama(node, H, W)
        alone = PointCloudMemory(voxel_size=0.02)
        for memory in (alone, both):
            memory.add(pano["rgb"], pano["semantic"], pano["depth"], scene.position(node))
        seen[name] = project(alone.points, alone.colors, alone.labels)["mask"].sum()
    out = project(both.points, both.colors, both.labels)
    assert out["mask"].sum() > max(seen.values()) > 0
    # Padding changes nothing; the depth and mask do not depend on the order of the memory.
    for key, value in _project(both, query).items():
        np.testing.assert_array_equal(value, out[key])
    order = np.random.default_rng(0).permutation(len(both))
    shuffled = project(both.points[order], both.colors[order], both.labels[order])
    np.testing.assert_array_equal(shuffled["mask"], out["mask"])
    np.testing.assert_array_equal(shuffled["depth"], out["depth"])


# (g') occlusion filter -----------------------------------------------------------------------
def _guidance_of(depth):
    depth = np.asarray(depth, np.float32)
    mask = depth > 0
    semantic = np.where(mask, np.where(depth < 2, 5, 9), 0).astype(np.uint8)
    rgb = np.repeat(semantic[..., None] * 10, 3, axis=-1).astype(np.uint8)
    return {"rgb": rgb, "semantic": semantic, "depth": depth, "mask": mask}


def test_occlusion_filter_drops_a_far_wall_seen_through_holes_in_a_near_plane():
    depth = np.full((8, 16), 4.0, np.float32)  # a far wall everywhere ...
    depth[2:6, 5:11] = 1.0  # ... behind a near plane
    depth[3, 7] = depth[4, 8] = 4.0  # with holes the wall shows through
    depth[2, 5] = 1.05  # within the tolerance of its nearer neighbours: kept
    depth[0, 0] = 0.0  # empty pixels are never a minimum, stay empty
    out = {k: np.asarray(v) for k, v in occlusion_filter(_guidance_of(depth), 3, 0.1).items()}
    assert not out["mask"][3, 7] and not out["mask"][4, 8]
    assert out["depth"][3, 7] == 0 and out["semantic"][3, 7] == 0 and not out["rgb"][3, 7].any()
    near = (depth > 0) & (depth < 2)
    assert out["mask"][near].all() and (out["semantic"][near] == 5).all()
    np.testing.assert_array_equal(out["depth"][near], depth[near])
    # Far pixels more than one pixel from the near plane are kept; those next to it are dropped
    # (the window cannot tell a hole from the plane's edge).
    assert out["mask"][0, 1:].all() and out["mask"][7].all() and out["mask"][:, 13].all()
    assert not out["mask"][1, 5:11].any() and not out["mask"][2:6, 4].any()
    assert out["mask"].dtype == bool and out["semantic"].dtype == np.uint8 and out["rgb"].dtype == np.uint8


def test_occlusion_filter_wraps_around_the_seam_and_takes_batches():
    depth = np.full((6, 16), 5.0, np.float32)
    depth[:, 0] = 1.0  # a near column at the seam: the far pixels in column W − 1 are its neighbours
    guidance = _guidance_of(depth)
    out = occlusion_filter(guidance, 3, 0.2)
    mask = np.asarray(out["mask"])
    assert mask[:, 0].all() and not mask[:, 1].any() and not mask[:, 15].any()
    assert mask[:, 2:15].all()
    # A 5 × 5 window reaches two columns; a batch of two gives the same per panorama.
    batch = {k: np.stack([v, np.roll(v, 3, axis=1)]) for k, v in guidance.items()}
    out5 = np.asarray(occlusion_filter(batch, 5, 0.2)["mask"])
    assert not out5[0][:, [1, 2, 14, 15]].any() and out5[0][:, 3:14].all() and out5[0][:, 0].all()
    np.testing.assert_array_equal(out5[1], np.roll(out5[0], 3, axis=1))
    # Off (window ≤ 1) is the identity; even windows and negative tolerances are refused.
    for key, value in occlusion_filter(guidance, 0, 0.1).items():
        np.testing.assert_array_equal(np.asarray(value), guidance[key])
    with pytest.raises(ValueError, match="window must be an odd number of pixels"):
        occlusion_filter(guidance, 4, 0.1)
    with pytest.raises(ValueError, match="tolerance must be a relative depth"):
        occlusion_filter(guidance, 3, -0.1)


def test_occlusion_filter_in_a_house_keeps_a_subset_that_is_closer_to_the_truth():
    scene = load_scene(100_000)
    nodes = sorted(scene.graph.nodes)
    a = nodes[0]
    b = next(iter(scene.graph.neighbors(a)))
    pano, truth = scene.panorama(a, H, W), scene.panorama(b, H, W)
    memory = PointCloudMemory()
    memory.add(pano["rgb"], pano["semantic"], pano["depth"], scene.position(a))
    plain = memory.reproject(scene.position(b), H, W)
    filtered = memory.reproject(scene.position(b), H, W, occlusion_window=5, occlusion_tolerance=0.1)
    assert filtered["mask"].sum() < plain["mask"].sum() and not (filtered["mask"] & ~plain["mask"]).any()
    kept = filtered["mask"]
    np.testing.assert_array_equal(filtered["depth"][kept], plain["depth"][kept])

    def absrel(where):
        return np.mean(np.abs(plain["depth"][where] - truth["depth"][where]) / truth["depth"][where])

    assert absrel(kept) < absrel(plain["mask"]) < absrel(plain["mask"] & ~kept)


# (h) ---------------------------------------------------------------------------------------
def test_bad_inputs_are_rejected_with_the_value_and_what_is_allowed():
    depth = np.ones((4, 8), np.float32)
    rgb, semantic = np.zeros((4, 8, 3), np.uint8), np.zeros((4, 8), np.uint8)
    memory = PointCloudMemory()
    with pytest.raises(ValueError, match=r"rgb must be .*\(4, 8, 3\).*got shape \(4, 7, 3\)"):
        memory.add(rgb[:, :7], semantic, depth, ORIGIN)
    with pytest.raises(ValueError, match=r"semantic must be .*\(4, 8\).*got shape \(8, 4\)"):
        memory.add(rgb, semantic.T, depth, ORIGIN)
    with pytest.raises(ValueError, match=r"mask must be .*got shape \(3, 8\)"):
        memory.add(rgb, semantic, depth, ORIGIN, mask=np.ones((3, 8), bool))
    with pytest.raises(ValueError, match=r"position must be 3 finite numbers"):
        memory.add(rgb, semantic, depth, ORIGIN[:2])
    with pytest.raises(ValueError, match=r"source must be one of \('observed', 'predicted'\), got 'dreamed'"):
        memory.add(rgb, semantic, depth, ORIGIN, source="dreamed")
    with pytest.raises(ValueError, match=r"voxel_size must be a positive number .* got -0.1"):
        PointCloudMemory(voxel_size=-0.1)
    with pytest.raises(ValueError, match=r"max_points must be a positive integer .* got 0"):
        PointCloudMemory(max_points=0)
    with pytest.raises(ValueError, match=r"colors must have shape \(2, 3\) \(N = 2 points\), got \(1, 3\)"):
        reproject_equirectangular(np.zeros((2, 3)), np.zeros((1, 3), np.uint8), np.zeros(2, np.uint8),
                                  ORIGIN, 8, 16)
    with pytest.raises(ValueError, match=r"fov_degrees must be in \(0, 180\), got 200"):
        reproject_pinhole(np.zeros((2, 3)), np.zeros((2, 3), np.uint8), np.zeros(2, np.uint8),
                          ORIGIN, 0.0, 200.0, 8, 8)
    with pytest.raises(ValueError, match="memory is empty"):
        memory.to_ply("/tmp/memory_helper/empty.ply")


def test_depth_in_the_wrong_units_nan_poses_and_empty_memory_are_refused():
    from worldsim.worldmodel.memory import PointCloudMemory

    memory = PointCloudMemory()
    rgb = np.zeros((4, 8, 3), np.uint8)
    semantic = np.ones((4, 8), np.uint8)
    with pytest.raises(ValueError, match="memory is empty"):
        memory.reproject((0.0, 0.0, 1.5), 4, 8)
    with pytest.raises(ValueError, match="millimetres"):
        memory.add(rgb, semantic, np.full((4, 8), 2500.0, np.float32), (0.0, 0.0, 1.5))
    with pytest.raises(ValueError, match="finite"):
        memory.add(rgb, semantic, np.full((4, 8), 2.5, np.float32), (np.nan, 0.0, 1.5))
    memory.add(rgb, semantic, np.full((4, 8), 2.5, np.float32), (0.0, 0.0, 1.5))
    guidance = memory.reproject((0.0, 0.0, 1.5), 4, 8)
    assert guidance["mask"].mean() > 0.9 and np.allclose(guidance["depth"][guidance["mask"]], 2.5, atol=1e-3)
