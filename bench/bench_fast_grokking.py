"""Steps and wall time to grok with and without each fast-grokking option, same seed, in one run.

    python bench/bench_fast_grokking.py                      # every pair below
    python bench/bench_fast_grokking.py --only nanda --device cuda

Each pair is two presets of experiments.toml that differ only in the option(s) being measured. Both are
trained by the worker's own loop (`grok_tui.training.neural.Trainer`, live analysis included, no
checkpoint files) until test accuracy >= 0.99 or the preset's steps, evaluating at the preset's cadence.
Prints one JSON line per run and one per pair with the ratios (baseline / option: > 1 means faster).
A run that does not grok reports grokked_at null and the ratio is null: nothing is assumed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from grok_tui.config import load_config
from grok_tui.training.common import pick_device
from grok_tui.training.neural import Trainer

ROOT = Path(__file__).resolve().parent.parent
GROKKED = 0.99
#: name → (baseline preset, preset with the option)
PAIRS = {
    "quick": ("quick", "quick-grokfast"),
    "nanda": ("nanda-add", "nanda-add-grokfast"),
    "nanda-fast": ("nanda-add", "nanda-add-fast"),
    "nanda-orthograd": ("nanda-add", "nanda-add-orthograd"),
    "prieto": ("prieto-mlp-no-wd", "prieto-mlp-orthograd"),
}


def time_to_grok(spec: dict, device: torch.device, tmp: Path, max_steps: int | None) -> dict:
    tr = Trainer(spec, tmp / spec["experiment"], device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = min(spec["steps"], max_steps or spec["steps"])
    ev = spec["eval_every"]
    metrics = tmp / spec["experiment"] / "metrics.jsonl"
    grokked, row = None, {}
    sync()
    t0 = time.perf_counter()
    while tr.step < steps and grokked is None:
        tr.train_step()
        if tr.step % ev == 0 or tr.step == steps:
            tr.evaluate(checkpoint=False)
            row = json.loads(metrics.read_text().splitlines()[-1])
            if row["test_acc"] >= GROKKED:
                grokked = tr.step
    sync()
    return {
        "experiment": spec["experiment"],
        "grokked_at": grokked,
        "steps_run": tr.step,
        "wall_s": round(time.perf_counter() - t0, 1),
        "final_test_acc": row.get("test_acc"),
        "softmax_collapse": row.get("softmax_collapse"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(PAIRS), help="a pair (repeatable)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=None, help="override each preset's first seed")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on steps per run")
    args = ap.parse_args()
    experiments = load_config(ROOT / "experiments.toml").experiments
    device = pick_device(args.device)
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads()}))
    done: dict[str, dict] = {}  # a baseline shared by two pairs is trained once
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(PAIRS):
            for exp in PAIRS[name]:
                if exp in done:
                    continue
                spec = dict(experiments[exp][0])
                if args.seed is not None:
                    spec.update(seed=args.seed, init_seed=args.seed, split_seed=args.seed)
                done[exp] = time_to_grok(spec, device, Path(tmp), args.max_steps)
                print(json.dumps(done[exp]), flush=True)
            base, opt = (done[exp] for exp in PAIRS[name])
            base_steps = base["grokked_at"]
            print(
                json.dumps(
                    {
                        "pair": name,
                        "seed": experiments[PAIRS[name][0]][0]["seed"] if args.seed is None else args.seed,
                        "steps_ratio": ratio(base_steps, opt["grokked_at"]),
                        "wall_ratio": ratio(base["wall_s"], opt["wall_s"])
                        if base_steps and opt["grokked_at"]
                        else None,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
