"""The writer side of the run directory, shared by every trainer (transformer/MLP loop, RFM)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import runs


def _clean(v: Any) -> Any:
    """JSON-safe scalars: numpy → Python, NaN/inf kept as floats (json allows them with allow_nan)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.9g}")  # stable, compact, and identical across identical runs
    return v


class Recorder:
    """Appends metrics/fourier rows, writes checkpoints, keeps status.json current."""

    def __init__(self, run_dir: Path | str) -> None:
        self.dir = Path(run_dir)
        (self.dir / runs.CKPT_DIR).mkdir(parents=True, exist_ok=True)

    def metrics(self, row: dict[str, Any]) -> None:
        runs.append_jsonl(self.dir / runs.METRICS, _clean(row))

    def fourier(self, row: dict[str, Any]) -> None:
        runs.append_jsonl(self.dir / runs.FOURIER, _clean(row))

    def status(self, **fields: Any) -> None:
        runs.update_status(self.dir, **_clean(fields))

    def checkpoint(self, step: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """``step_NNNNNNN.npz``: weights and analysis as plain arrays (no pickle), plus ``meta`` as JSON."""
        path = self.dir / runs.CKPT_DIR / runs.ckpt_name(step)
        tmp = path.with_name(path.name + ".tmp.npz")
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        payload["meta_json"] = np.asarray(json.dumps(_clean({"step": step, **meta})))
        np.savez(tmp, **payload)
        os.replace(tmp, path)
        return path

    def truncate_after(self, step: int) -> None:
        """Drop rows past ``step`` (a resume replays them): rewrite-then-rename, never in place."""
        for name in (runs.METRICS, runs.FOURIER):
            path = self.dir / name
            if not path.exists():
                continue
            rows = [r for r in runs.read_jsonl(path) if int(r.get("step", -1)) <= step]
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w") as f:
                for r in rows:
                    f.write(json.dumps(r, separators=(",", ":")) + "\n")
            os.replace(tmp, path)
        ckpts = self.dir / runs.CKPT_DIR
        for s in runs.RunDir(self.dir).checkpoint_steps():
            if s > step:
                (ckpts / runs.ckpt_name(s)).unlink(missing_ok=True)


def load_checkpoint(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a checkpoint npz; numpy only. Raises ValueError naming the file if corrupt."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta_json"}
            meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"{path}: corrupt or unreadable checkpoint ({e.__class__.__name__}: {e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise ValueError(f"{path}: corrupt or unreadable checkpoint ({e.__class__.__name__})") from None
    return arrays, meta
