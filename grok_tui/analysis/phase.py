"""The phase a run is in (Nanda et al. §5: memorisation → circuit formation → clean-up).

Rule, applied to the metrics rows up to the step asked about (each boundary is the first evaluation
where its condition holds, at or after the previous boundary; once crossed, it stays crossed):

1. **memorisation** until train accuracy first reaches 0.99 (``runs.FIT_THRESHOLD``, the same
   "memorised at" that ``grok ls`` shows).
2. **circuit formation** from there until test accuracy first reaches 0.5: the train set is fitted
   and the Fourier circuit grows inside the weights (restricted loss falls, excluded loss rises, the
   weight norm shrinks smoothly) while test behaviour is still dominated by memorisation.
3. **clean-up** from there until clean-up is complete: test accuracy ≥ 0.99 *and* test loss within
   a factor 10 of train loss — the memorising components are gone (in Nanda's run test loss falls
   to the train loss over epochs ~9.4k–14k, the weight norm drops sharply, the Gini rises).
4. **generalised** afterwards (clean-up done).

Why accuracy and loss rather than the Fourier measures: they exist for every model and every task
(the restricted loss needs a task with Fourier structure and a checkpoint), and the Fourier measures
move smoothly, so any threshold on them would be arbitrary; they are shown beside the phase instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MEMORISED_ACC = 0.99
CLEANUP_TEST_ACC = 0.5
GENERALISED_TEST_ACC = 0.99
GENERALISED_LOSS_RATIO = 10.0

PHASES = ("memorisation", "circuit formation", "clean-up", "generalised")


@dataclass
class PhaseBoundaries:
    """Steps at which each phase after memorisation began (None: not reached)."""

    circuit_formation: int | None = None
    cleanup: int | None = None
    generalised: int | None = None

    def phase_at(self, step: int) -> str:
        if self.generalised is not None and step >= self.generalised:
            return "generalised"
        if self.cleanup is not None and step >= self.cleanup:
            return "clean-up"
        if self.circuit_formation is not None and step >= self.circuit_formation:
            return "circuit formation"
        return "memorisation"


def _num(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
        return float(v)
    return None


def phase_boundaries(rows: list[dict[str, Any]]) -> PhaseBoundaries:
    """Boundaries of the rule above from metrics rows (rows lacking a key are skipped)."""
    out = PhaseBoundaries()
    for row in sorted(rows, key=lambda r: r.get("step", 0)):
        step = row.get("step")
        if not isinstance(step, int):
            continue
        train_acc, test_acc = _num(row, "train_acc"), _num(row, "test_acc")
        if out.circuit_formation is None:
            if train_acc is not None and train_acc >= MEMORISED_ACC:
                out.circuit_formation = step
            else:
                continue
        if out.cleanup is None:
            if test_acc is not None and test_acc >= CLEANUP_TEST_ACC:
                out.cleanup = step
            else:
                continue
        if out.generalised is None:
            train_loss, test_loss = _num(row, "train_loss"), _num(row, "test_loss")
            if (
                test_acc is not None
                and test_acc >= GENERALISED_TEST_ACC
                and train_loss is not None
                and test_loss is not None
                and test_loss <= GENERALISED_LOSS_RATIO * max(train_loss, 1e-300)
            ):
                out.generalised = step
            else:
                continue
        break
    return out


def phase_at(rows: list[dict[str, Any]], step: int | None = None) -> str:
    """The phase at ``step`` (default: the last row's step) from the rows up to that step."""
    if step is None:
        steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
        step = max(steps) if steps else 0
    return phase_boundaries(
        [r for r in rows if isinstance(r.get("step"), int) and r["step"] <= step]
    ).phase_at(step)
