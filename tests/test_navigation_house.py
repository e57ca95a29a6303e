"""Houses, rendering, navigation graphs and the pybullet copy of a house."""

import networkx as nx
import numpy as np
import pytest

from worldsim.envs.navigation.geometry import make_box
from worldsim.envs.navigation.graph import EDGE_BOUND, free_space_mask
from worldsim.envs.navigation.house import MAX_ROOMS, MIN_ROOMS, generate_house
from worldsim.envs.navigation.physics import PybulletHouse
from worldsim.envs.navigation.render import (
    HouseRenderer, equirectangular_directions, pinhole_directions)
from worldsim.envs.navigation.scene import load_scene
from worldsim.envs.navigation.semantics import CLASS_IDS, REQUIRED_ROOMS


def test_same_seed_same_house_and_seeds_differ():
    a, b, c = generate_house(11), generate_house(11), generate_house(12)
    assert a == b
    assert a.boxes != c.boxes


@pytest.mark.parametrize("seed", range(0, 40, 7))
def test_house_has_required_rooms_and_furniture_by_room_type(seed):
    house = generate_house(seed)
    kinds = [room.kind for room in house.rooms[1:]]
    assert MIN_ROOMS <= len(kinds) <= MAX_ROOMS
    assert set(REQUIRED_ROOMS) <= set(kinds)
    by_room = {(item.name, house.rooms[item.room].kind) for item in house.furniture}
    assert ("bed", "bedroom") in by_room and ("toilet", "bathroom") in by_room
    assert ("fridge", "kitchen") in by_room
    assert not {name for name, kind in by_room if name == "bed" and kind != "bedroom"}


def test_adjacency_prior_puts_dining_room_next_to_kitchen():
    """Over many houses, a dining room shares a wall with the kitchen far above chance."""
    shared, total = 0, 0
    for seed in range(60):
        house = generate_house(seed)
        rooms = {r.kind: r for r in house.rooms}
        if "dining room" not in rooms:
            continue
        kitchen, dining = rooms["kitchen"], rooms["dining room"]
        total += 1
        same_row = (kitchen.low[1] > 0) == (dining.low[1] > 0)
        touching = np.isclose(kitchen.high[0], dining.low[0]) or np.isclose(dining.high[0], kitchen.low[0])
        shared += bool(same_row and touching)
    assert total >= 5 and shared / total > 0.5


def test_bad_house_seed_is_rejected():
    with pytest.raises(ValueError, match="non-negative integer"):
        generate_house(-1)


def _known_room():
    """A 6 × 4 m room, 3 m high, walls of 0.1 m centred on x = ±3, y = ±2."""
    wall, floor, ceiling = CLASS_IDS["wall"], CLASS_IDS["floor"], CLASS_IDS["ceiling"]
    grey = (0.5, 0.5, 0.5)
    return [
        make_box((-3.05, -2.05, 0), (-2.95, 2.05, 3), wall, grey),
        make_box((2.95, -2.05, 0), (3.05, 2.05, 3), wall, grey),
        make_box((-3.05, -2.05, 0), (3.05, -1.95, 3), wall, grey),
        make_box((-3.05, 1.95, 0), (3.05, 2.05, 3), wall, grey),
        make_box((-3.05, -2.05, -0.05), (3.05, 2.05, 0), floor, grey),
        make_box((-3.05, -2.05, 3), (3.05, 2.05, 3.05), ceiling, grey),
    ]


def test_panorama_of_a_known_room_has_exact_depth_and_classes():
    renderer = HouseRenderer(_known_room())
    origin = np.array([0.5, -0.25, 1.5])
    pano = renderer.panorama(origin, 64, 128)
    directions = equirectangular_directions(64, 128).astype(np.float64)
    # Distance to each inner face along each ray; the nearest one is hit.
    with np.errstate(divide="ignore"):
        tx = np.where(directions[..., 0] > 0, (2.95 - origin[0]) / directions[..., 0],
                      (-2.95 - origin[0]) / directions[..., 0])
        ty = np.where(directions[..., 1] > 0, (1.95 - origin[1]) / directions[..., 1],
                      (-1.95 - origin[1]) / directions[..., 1])
        tz = np.where(directions[..., 2] > 0, (3.0 - origin[2]) / directions[..., 2],
                      (0.0 - origin[2]) / directions[..., 2])
    candidates = np.stack([tx, ty, tz], -1)
    expected = candidates.min(-1)
    np.testing.assert_allclose(pano["depth"], expected, rtol=1e-4, atol=1e-4)
    expected_class = np.where(candidates.argmin(-1) < 2, CLASS_IDS["wall"],
                              np.where(directions[..., 2] > 0, CLASS_IDS["ceiling"], CLASS_IDS["floor"]))
    clear = np.sort(candidates, -1)[..., 1] - expected > 1e-3  # away from edges between faces
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(pano["semantic"][clear], expected_class[clear])
    assert pano["rgb"].dtype == np.uint8 and pano["rgb"].shape == (64, 128, 3)


def test_panorama_column_convention():
    directions = equirectangular_directions(8, 16)
    assert np.allclose(directions[4, 8, :2] / np.linalg.norm(directions[4, 8, :2]), [0, 1], atol=0.21)
    assert np.allclose(directions[4, 12, :2] / np.linalg.norm(directions[4, 12, :2]), [1, 0], atol=0.21)
    assert directions[0, 0, 2] > 0.9 and directions[-1, 0, 2] < -0.9


def test_pinhole_looks_along_heading_and_sees_the_wall():
    renderer = HouseRenderer(_known_room())
    image = renderer.pinhole((0.0, 0.0, 1.5), heading=0.0, height=9, width=9)
    assert image["depth"][4, 4] == pytest.approx(2.95, abs=1e-4)
    assert image["semantic"][4, 4] == CLASS_IDS["wall"]
    assert np.allclose(pinhole_directions(np.pi / 2, 9, 9)[4, 4], [0, 1, 0], atol=1e-6)
    with pytest.raises(ValueError, match="fov_degrees"):
        pinhole_directions(0.0, 9, 9, fov_degrees=200)
    with pytest.raises(ValueError, match="height"):
        renderer.panorama((0, 0, 1.5), height=2, width=8)


@pytest.mark.parametrize("seed", [0, 5, 100_003])
def test_navigation_graph_is_connected_in_free_space_and_covers_every_room(seed):
    scene = load_scene(seed)
    graph = scene.graph
    assert nx.is_connected(graph) and graph.number_of_nodes() >= 10
    points = np.array([scene.position(n)[:2] for n in graph])
    assert free_space_mask(scene.house, points, radius=0.19).all()
    assert {graph.nodes[n]["room"] for n in graph} >= {r.index for r in scene.house.rooms}
    weights = np.array([w for *_, w in graph.edges(data="weight")])
    assert weights.max() <= EDGE_BOUND and np.median(weights) == pytest.approx(2.0, abs=0.5)


def test_pybullet_copy_agrees_with_the_graph():
    scene = load_scene(5)
    world = PybulletHouse(scene.house)
    assert not any(world.body_collides(scene.position(n)[:2], radius=0.15) for n in scene.graph)
    door = scene.house.doors[0]
    normal = np.array([0.0, 1.0, 0.0]) if door.along_x else np.array([1.0, 0.0, 0.0])
    along = np.array([1.0, 0.0, 0.0]) if door.along_x else np.array([0.0, 1.0, 0.0])
    center = np.array([*door.center, 1.0])
    through_door = world.ray_hits((center - normal)[None], (center + normal)[None])
    through_wall = world.ray_hits((center + along * door.width - normal)[None],
                                  (center + along * door.width + normal)[None])
    assert through_door[0] == 1.0 and through_wall[0] < 1.0
