"""Multi-task vision classifiers: the dataset, training through the shared loop, evaluation
(accuracy per task, FLOPs, parameters), BPR at reduced capacity and task-network extraction."""

import json

import numpy as np
import pytest
from flax import nnx

from worldsim.agents.training import make_train_task
from worldsim.agents.vision.data import (PLACES, ROOM_KINDS, TASKS, DatasetSpec,
                                         VisionBatches, VisionDataset, build_dataset,
                                         place_label)
from worldsim.agents.vision.training import (build_vision_model, evaluate_model,
                                             evaluate_vision_model, load_split,
                                             with_moe_inference)
from worldsim.nn import MoeMlp
from worldsim.train.configuration import load_config
from worldsim.train.loop import train
from worldsim.train.metrics import read_metrics

CONFIG = "configs/backbones/vit.py"


def _small(tmp_dir, variant=""):
    config = load_config(f"{CONFIG}:{variant + ',' if variant else ''}small")
    config.data.cache_dir = str(tmp_dir)
    return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vision_data")


@pytest.fixture(scope="module")
def eval_split(data_dir):
    return load_split(_small(data_dir), "eval")


def test_dataset_has_both_tasks_with_valid_labels_and_is_deterministic(tmp_path):
    spec = DatasetSpec("train", (16, 32), nav_houses=1, block_episodes=4)
    first, second = build_dataset(spec), build_dataset(spec)
    assert first.images.shape[1:] == (16, 32, 3) and first.images.dtype == np.uint8
    for task, classes in enumerate((ROOM_KINDS, PLACES)):
        labels = first.labels[first.tasks == task]
        assert len(labels) > 0 and labels.min() >= 0 and labels.max() < len(classes)
    assert int(np.sum(first.tasks == 1)) == 4
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    path = tmp_path / spec.file_name()
    first.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # temporary file renamed
    loaded = VisionDataset.load(path)
    assert loaded.spec == spec
    np.testing.assert_array_equal(loaded.images, first.images)
    batches = VisionBatches(first, 8, seed=3)
    a, b = batches.batch_at(5), batches.batch_at(5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["task_ids"].tolist() == [0] * 4 + [1] * 4
    assert not np.array_equal(batches.batch_at(6)["images"], a["images"])


def test_place_label_and_margin():
    label, margin = place_label([0.45, -0.03])  # in front of the cube-area centre, y < 0
    assert PLACES[label] == "bottom left" and margin == pytest.approx(0.03)
    assert PLACES[place_label([0.3, 0.1])[0]] == "top right"


def test_small_config_trains_and_evaluates(data_dir, tmp_path):
    config = _small(data_dir)
    workdir = tmp_path / "run"
    train(config, workdir, make_train_task(config), progress=False)
    rows = read_metrics(workdir)
    assert rows[-1]["step"] == config.train.steps
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert {f"accuracy/{name}" for name in TASKS} <= set(rows[-1])
    result = evaluate_vision_model(workdir, timing_batches=1)
    assert set(result["accuracy"]) == set(TASKS)
    assert all(0.0 <= a <= 1.0 for a in result["accuracy"].values())
    assert result["flops_per_image"] > 0 and result["params"] > 0
    assert result["images_per_sec"] > 0
    json.dumps(result)


def test_bpr_evaluation_at_reduced_capacity(data_dir, eval_split):
    config = _small(data_dir, "vmoe")
    model = build_vision_model(config)
    low = with_moe_inference(model, capacity_factor=0.25, batch_priority=True)
    layers = [m for _, m in nnx.iter_modules(low) if isinstance(m, MoeMlp)]
    assert layers and all(m.config.eval_capacity_factor == 0.25 and m.config.batch_priority
                          for m in layers)
    result = evaluate_model(model, eval_split, batch_size=16, capacity_factor=0.25,
                            batch_priority=True, timing_batches=1)
    assert set(result["accuracy"]) == set(TASKS) and result["flops_per_image"] > 0
    with pytest.raises(ValueError, match="token-routed MoE"):
        with_moe_inference(build_vision_model(_small(data_dir)), capacity_factor=0.5)


def test_extracted_task_networks_evaluate(data_dir, eval_split):
    model = build_vision_model(_small(data_dir, "task_moe"))
    result = evaluate_model(model, eval_split, batch_size=16, task_networks=True,
                            timing_batches=1)
    for name in TASKS:
        networks = result["task_networks"][name]
        full, small = networks["full"], networks["extracted"]
        assert small["params"] < full["params"]
        assert small["accuracy"] == full["accuracy"]  # same outputs at evaluation
    with pytest.raises(ValueError, match="task-routed MoE"):
        evaluate_model(build_vision_model(_small(data_dir)), eval_split, task_networks=True)


def test_unknown_config_argument_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="tokenlearner_half.*vmoe.*task_moe.*tokens16.*small"):
        load_config(f"{CONFIG}:resnet")
    with pytest.raises(ValueError, match="tokenlearner"):
        load_config(f"{CONFIG}:dense,tokens16")
    config = load_config(f"{CONFIG}:tokenlearner_three_quarters,tokens16")
    assert config.model.tokenlearner_layer == 3 and config.model.num_tokens == 16
