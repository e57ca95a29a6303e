"""Experiment configs: Python files with ``get_config() -> ml_collections.ConfigDict``.

    >>> config = load_config("configs/ibc/blockpush_dfo.py", ["--config.train.steps=5000"])

Overrides name existing keys only; a misspelt key is refused with the nearest valid keys.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
from pathlib import Path
from typing import Any

import ml_collections


class ConfigError(ValueError):
    """A config file or override that cannot be used."""


def load_config(path: str | Path, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """Runs ``get_config()`` of the file at ``path`` and applies ``--config.a.b=value`` overrides.

    ``path`` may carry an argument after a colon, ``configs/ibc/blockpush.py:langevin``, which
    is passed as ``get_config("langevin")`` (big_vision style).
    """
    text = str(path)
    argument = None
    if ":" in Path(text).name:
        text, argument = text.rsplit(":", 1)
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"worldsim_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} has no get_config() function")
    config = module.get_config() if argument is None else module.get_config(argument)
    for override in overrides:
        apply_override(config, override)
    return config


def all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Dotted names of every leaf, e.g. ["train.steps", "model.width", ...]."""
    keys = []
    for name, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += all_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a path or a name


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    """Applies one ``--config.key.sub=value`` (the ``--config.`` prefix is optional)."""
    text = override.removeprefix("--").removeprefix("config.")
    if "=" not in text:
        raise ConfigError(f"override {override!r} must look like --config.train.steps=5000")
    key, raw = text.split("=", 1)
    valid = all_keys(config)
    if key not in valid:
        near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
        hint = f"; nearest valid keys: {', '.join(near)}" if near else ""
        raise ConfigError(f"config has no key {key!r}{hint}")
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        node = node[name]
    value = _parse_value(raw)
    old = node[leaf]
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        node[leaf] = value
    except TypeError as err:
        raise ConfigError(f"override {override!r}: {err}") from None


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A JSON-ready plain dict (round-trips through json)."""
    return json.loads(config.to_json())


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Lines ``key: a_value != b_value`` for every leaf where two config dicts differ."""
    lines = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(left, dict) and isinstance(right, dict):
            lines += config_differences(left, right, f"{prefix}{key}.")
        elif left != right:
            lines.append(f"{prefix}{key}: {left!r} != {right!r}")
    return lines
