"""The machine description printed next to every benchmark table (shared by the scripts here)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys


def _cpu_model() -> str:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    model = fields.get("model name", "unknown")
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return model


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1/5/15-minute load averages, e.g. "2.10 2.13 1.27"."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe() -> dict[str, str]:
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "pybullet": _version("pybullet"),
        "gymnasium": _version("gymnasium"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def markdown(info: dict[str, str]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in info.items())
