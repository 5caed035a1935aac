"""One BatchedAdamW step over a pack of N runs against N torch AdamW steps, at nanda-add's shapes.

    python bench/bench_batched_adamw.py                      # N = 1, 2, 4, ..., 64 on the CPU
    python bench/bench_batched_adamw.py --device cuda --sizes 1 8 64

The optimizer step alone (no forward or backward): what packing saves or costs in the update. The solo
side is the solo trainer's optimizer, torch AdamW with foreach=True (the trainer uses fused=True on CUDA,
measured here too with ``--fused``). Per-run hyperparameters differ, as in a real pack.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import timed

from grok_tui.config import load_config
from grok_tui.models.shapes import n_params, spec_shapes
from grok_tui.training.batched import BatchedAdamW

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="nanda-add")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--min-s", type=float, default=1.0, help="timed seconds per measurement")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--fused", action="store_true", help="solo side fused=True (the trainer's CUDA choice)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the trainer does on the CPU
    spec = load_config(ROOT / "experiments.toml").experiments[args.experiment][0]
    shapes = list((spec_shapes(spec) or {}).values())
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    o = spec["optim"]
    print(
        json.dumps(
            {
                "experiment": args.experiment,
                "params_per_run": n_params(dict(enumerate(shapes))),
                "device": str(device)
                + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )
    for n in args.sizes:
        lrs = [o["lr"] * (1 + i / n) for i in range(n)]
        stacked = [torch.randn((n, *s), device=device) for s in shapes]
        for p in stacked:
            p.grad = torch.randn_like(p) * 1e-3
        packed = BatchedAdamW(
            stacked, lrs, [tuple(o["betas"])] * n, [o["eps"]] * n, [o["weight_decay"]] * n, [o["warmup"]] * n
        )
        solos = []
        for i in range(n):
            params = [torch.nn.Parameter(p[i].clone()) for p in stacked]
            for p, q in zip(params, stacked, strict=True):
                p.grad = q.grad[i].clone()
            kw = {"fused": True} if args.fused else {"foreach": True}
            solos.append(
                torch.optim.AdamW(
                    params,
                    lr=lrs[i],
                    betas=tuple(o["betas"]),
                    eps=o["eps"],
                    weight_decay=o["weight_decay"],
                    **kw,
                )
            )

        def solo_steps(solos: list[torch.optim.AdamW] = solos) -> None:
            for opt in solos:
                opt.step()

        packed_s = timed(packed.step, sync, args.min_s)
        solo_s = timed(solo_steps, sync, args.min_s)
        row = {
            "runs": n,
            "packed_ms": round(packed_s * 1e3, 3),
            "solo_total_ms": round(solo_s * 1e3, 3),
            "speedup": round(solo_s / packed_s, 2),
        }
        print(json.dumps(row), flush=True)
        del stacked, packed, solos


if __name__ == "__main__":
    main()
