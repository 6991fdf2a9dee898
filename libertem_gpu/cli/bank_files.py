"""The files of a template bank, written by ``libertem-gpu templates`` and read by ``run
--templates`` and ``orientation-map``:

- ``BANK.npy``: ``(templates, spots, 3)`` reflections ``(dy, dx, intensity)``, padded with
  spots of intensity 0;
- ``BANK_orientations.npy``: ``(templates, 3, 3)`` rotations, crystal to laboratory;
- ``BANK_phases.json``: the phases (name, crystal system or null, cell) and each template's
  phase, so that one bank can hold several phases (``templates --append``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError

__all__ = ["Bank", "bank_files", "read_bank", "read_phases", "write_bank"]

_FORMAT = "libertem_gpu template bank phases"


def bank_files(bank: str) -> dict[str, str]:
    """The three paths of the bank ``BANK.npy``."""
    if not bank.endswith(".npy"):
        raise UsageError(f"{bank}: the template bank is written as a .npy file")
    stem = bank[: -len(".npy")]
    return {
        "bank": bank,
        "orientations": stem + "_orientations.npy",
        "phases": stem + "_phases.json",
    }


@dataclass
class Bank:
    """A bank in memory: unpadded templates, their orientations, the phases (dicts of
    ``name``, ``system``, ``cell``) and each template's phase index."""

    templates: list[np.ndarray]
    orientations: np.ndarray
    phases: list[dict[str, Any]]
    template_phase: np.ndarray


def read_phases(phases_path: str, templates: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The phases and each template's phase from ``BANK_phases.json``, checked against the
    bank's number of templates."""
    try:
        with open(phases_path, encoding="utf-8") as f:
            found = json.load(f)
        phases = list(found["phases"])
        which = np.asarray(found["template_phase"], dtype=np.int64)
        if found.get("format") != _FORMAT or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in phases
        ):
            raise ValueError("not a phases file of libertem-gpu templates")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{phases_path}: cannot read the bank's phases ({e})") from None
    if which.shape != (templates,) or (
        templates and not 0 <= which.min() <= which.max() < len(phases)
    ):
        raise UsageError(
            f"{phases_path}: {which.size} template phases for a bank of {templates} templates "
            f"and {len(phases)} phases"
        )
    return phases, which


def read_bank(bank: str) -> Bank:
    """The bank of ``BANK.npy`` with its orientations and phases."""
    paths = bank_files(bank)
    try:
        padded = np.load(paths["bank"], allow_pickle=False)
        rotations = np.load(paths["orientations"], allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"{bank}: cannot read the bank and its orientations ({e})") from None
    if padded.ndim != 3 or rotations.shape != (len(padded), 3, 3):
        raise UsageError(
            f"{bank}: {padded.shape} templates and {rotations.shape} orientations do not match"
        )
    phases, which = read_phases(paths["phases"], len(padded))
    templates = [t[t[:, 2] > 0] for t in padded]
    return Bank(templates, rotations, phases, which)


def write_bank(bank: str, contents: Bank) -> None:
    """Write the three files of ``BANK.npy``, each whole under a temporary name; the phases
    last, so that they never describe a bank that is not there."""
    from libertem_gpu.outputs import atomic_path

    paths = bank_files(bank)
    padded = np.zeros((len(contents.templates), max(len(t) for t in contents.templates), 3))
    for row, t in enumerate(contents.templates):
        padded[row, : len(t)] = t
    with atomic_path(paths["bank"]) as tmp:
        np.save(tmp, padded)
    with atomic_path(paths["orientations"]) as tmp:
        np.save(tmp, contents.orientations)
    document = {
        "format": _FORMAT,
        "phases": contents.phases,
        "template_phase": [int(i) for i in contents.template_phase],
    }
    with atomic_path(paths["phases"]) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
