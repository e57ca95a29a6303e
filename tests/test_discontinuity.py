"""The implicit-vs-explicit discontinuity study (agents/ibc/discontinuity.py), scaled down."""

from __future__ import annotations

import numpy as np

from worldsim.agents.ibc.discontinuity import levels, run_discontinuity_study, step_function


def test_step_function_and_levels():
    x = np.array([-1.0, -1e-6, 0.0, 0.49, 0.5, 1.0])
    np.testing.assert_allclose(step_function(x), [0, 0, 1, 1, 0.25, 0.25])
    np.testing.assert_allclose(levels(), [0.0, 1.0, 0.25])


def test_implicit_fit_jumps_where_the_explicit_fit_ramps(tmp_path):
    result = run_discontinuity_study(seed=0, steps=600, out_png=tmp_path / "study.png",
                                     num_data=200, width=32, num_negatives=32,
                                     inference_samples=128, num_eval=1001)
    implicit, explicit = result["implicit"], result["explicit"]
    # Both fit the flat parts.
    assert implicit["elsewhere"] < 0.05 and explicit["elsewhere"] < 0.05, result
    # Near the jumps the continuous explicit fit passes through values the target never
    # takes; the energy model's argmin stays on one branch or the other.
    assert explicit["intermediate_near_jump"] >= 0.1, result
    assert implicit["intermediate_near_jump"] <= 0.02, result
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
