"""The same house in pybullet, for collision checks of a body moving through it.

    >>> world = PybulletHouse(generate_house(7))
    >>> world.body_collides((x, y), radius=0.3)   # a 1.6 m cylinder standing at (x, y)
    >>> world.ray_hits(start, end)                # first hit fraction along a segment

Every box of the house that stands on the floor (walls, furniture, door leaves) becomes a
static box collision shape; floors, ceilings and wall-hung panels are left out.
"""

from __future__ import annotations

import weakref

import numpy as np

from worldsim.envs.manipulation.scene import _disconnect, _quiet, bullet_client, pybullet
from worldsim.envs.navigation.house import House

BODY_HEIGHT = 1.6


class PybulletHouse:
    """A DIRECT-mode pybullet world holding the house's standing geometry."""

    def __init__(self, house: House):
        with _quiet(1):
            self.client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        weakref.finalize(self, _disconnect, self.client)
        self.house = house
        self.body_ids = []
        self._probes: dict[float, int] = {}
        for box in house.boxes:
            if not box.blocks_walking:
                continue
            half = (np.asarray(box.high) - np.asarray(box.low)) / 2
            center = (np.asarray(box.low) + np.asarray(box.high)) / 2
            shape = self.client.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half.tolist())
            self.body_ids.append(self.client.createMultiBody(0.0, shape, -1, center.tolist()))

    def body_collides(self, xy, radius: float = 0.3, margin: float = 0.0) -> bool:
        """Whether an upright cylinder of ``radius`` (m) and ``BODY_HEIGHT`` standing at
        ``xy`` touches any of the house's geometry (closer than ``margin``)."""
        probe = self._probe(float(radius))
        self.client.resetBasePositionAndOrientation(
            probe, [float(xy[0]), float(xy[1]), BODY_HEIGHT / 2 + 0.05], [0, 0, 0, 1])
        return any(self.client.getClosestPoints(probe, body, margin) for body in self.body_ids)

    def _probe(self, radius: float) -> int:
        """A static cylinder body of ``radius``, made once per radius."""
        if radius not in self._probes:
            shape = self.client.createCollisionShape(pybullet.GEOM_CYLINDER, radius=radius,
                                                     height=BODY_HEIGHT - 0.1)
            self._probes[radius] = self.client.createMultiBody(0.0, shape, -1, [0.0, 0.0, -10.0])
        return self._probes[radius]

    def ray_hits(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """(N,) hit fraction along each segment from ``starts`` to ``ends`` (N, 3); 1.0 = clear."""
        results = self.client.rayTestBatch(np.asarray(starts).tolist(), np.asarray(ends).tolist())
        return np.array([r[2] if r[0] >= 0 else 1.0 for r in results])
