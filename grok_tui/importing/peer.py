"""Reading a peer's checkpoint file: what it holds, at which training steps, and what it says about itself.

Formats (all torch.save files):

- a bare state dict (Nanda's layout or TransformerLens's);
- Nanda et al.'s saved run (neelnanda-io/Grokking ``saved_runs/*.pth``, progress-measures-paper
  ``final.pth``): ``model`` plus optionally ``optimizer``, ``scheduler``, ``train_losses``,
  ``test_losses``, ``epoch``, ``config``;
- Nanda et al.'s full run (``full_run_data.pth``): ``state_dicts`` with ``checkpoint_epochs``;
- a plain list of state dicts (the user says the steps: ``every`` and ``first``).

Steps are optimizer steps. Nanda's loop saves a model at epoch e after that epoch's optimizer step
(progress-measures-paper ``train_model``: ``do_a_training_step(e)``, then ``save_epoch(e)``), so the
weights saved at epoch e have taken e + 1 full-batch steps; a final file's scheduler ``last_epoch`` counts
them directly, and is read first (that code's ``final.pth`` stores the configured epoch count as
``epoch``, even after an early stop). ``train_losses[e]`` is measured before step e + 1, i.e. at step e.

Files are read with ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only;
a file that needs more (arbitrary classes, which can run code when unpickled) is refused with one line,
unless the user passes ``trust``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Nanda's ``fn_name`` values and the task each one is (progress-measures-paper ``Config.fns_dict``).
NANDA_FNS = {"add": "add", "subtract": "sub", "x2xyy2": "x^2 + x*y + y^2"}
#: Settings a saved run's ``config`` may hold, by our name.
CONFIG_KEYS = {"p": "p", "frac_train": "train_frac", "seed": "seed", "fn_name": "task"}


class PeerFileError(ValueError):
    """The file cannot be imported: the message (without the file name) says why, naming the key."""


@dataclass
class PeerFile:
    """What a peer's file holds: state dicts at steps, and what it says about the run."""

    format: str  # state_dict | saved_run | full_run | list
    states: list[tuple[int, dict[str, np.ndarray], str]]  # (step, state dict, where in the file)
    config: dict[str, Any] = field(default_factory=dict)  # the file's own settings, our names
    raw_config: dict[str, Any] = field(default_factory=dict)  # its config as stored (JSON-able)
    optimizer: dict[str, Any] | None = None  # param_groups[0] without the params
    train_losses: list[float] | None = None  # the peer's own numbers, per step from 0
    test_losses: list[float] | None = None
    test_every: int | None = None  # steps between the peer's test losses
    step_rule: str = ""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: Path, trust: bool = False) -> Any:
    """The unpickled file, tensors mapped to the CPU. PeerFileError when it is not a torch file, or
    when it needs full unpickling and ``trust`` is not given."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the error says enough
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as e:  # a hostile file raises anything: KeyError, EOFError, RuntimeError, ...
        text = str(e)
        if not trust and (m := re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)):
            raise PeerFileError(
                f"needs full unpickling to load (it holds {m.group(1)}), which can run code from the file; "
                "torch.load(weights_only=True) refused it: pass --trust if you trust where it came from"
            ) from None
        if not trust and (m := re.search(r"Unsupported operand (\d+)", text)):
            raise PeerFileError(
                f"not a torch file that the safe loader reads (pickle operand {m.group(1)}); if it is one "
                "and you trust it, --trust loads it with full unpickling"
            ) from None
        why = (
            _first_line(text) if text.strip() else "the file ends too soon" if isinstance(e, EOFError) else ""
        )
        raise PeerFileError(
            f"not a readable torch file ({e.__class__.__name__}{': ' + why if why else ''})"
        ) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line[:200]


def _state_dict(obj: Any, where: str) -> dict[str, np.ndarray]:
    """A state dict as float arrays; PeerFileError naming ``where`` (and the key) otherwise."""
    import torch

    if not isinstance(obj, dict) or not obj:
        raise PeerFileError(f"{where} is not a state dict (a {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise PeerFileError(f"{where} has a key {k!r} that is not a parameter name")
        if not isinstance(v, torch.Tensor):
            raise PeerFileError(f"{where}: key '{k}' is a {type(v).__name__}, not a tensor")
        if v.is_complex() or v.is_quantized or v.layout != torch.strided:
            raise PeerFileError(f"{where}: key '{k}' holds a {v.dtype} {v.layout} tensor, not plain weights")
        v = v.detach()
        if v.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16; float32 holds both exactly
            v = v.float()
        out[k] = v.numpy()  # shares the tensor's memory: a series is not held twice
    return out


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _step(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
        raise PeerFileError(f"{where} is {v!r}, not a step count")
    return int(v)


def _floats(v: Any) -> list[float] | None:
    if not isinstance(v, (list, tuple)) or not v:
        return None
    try:
        return [float(x) for x in v]
    except (TypeError, ValueError):
        return None


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)[:200]


def read(obj: Any, every: int | None = None, first: int = 0, step: int | None = None) -> PeerFile:
    """The state dicts of an unpickled peer file, each at its step (``step`` overrides a single state's).
    PeerFileError for a layout this does not know, naming the key."""
    series = isinstance(obj, (list, tuple)) or (isinstance(obj, dict) and "state_dicts" in obj)
    if series and step is not None:
        raise PeerFileError(
            "holds a series of state dicts: --step is for a single one (use --every, --first)"
        )
    if not series and (every is not None or first):
        raise PeerFileError(
            "holds a single state dict: --every and --first are for a list of them (use --step)"
        )
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise PeerFileError("an empty list: no state dicts to import")
        if every is None:
            raise PeerFileError(
                f"a list of {len(obj)} state dicts with no steps: give --every N (and --first S) for them"
            )
        states = [
            (first + i * every, _state_dict(sd, f"entry {i}"), f"entry {i}") for i, sd in enumerate(obj)
        ]
        return PeerFile("list", states, step_rule=f"entry i at step {first} + {every}·i (--first, --every)")
    if not isinstance(obj, dict):
        raise PeerFileError(f"holds a {type(obj).__name__}, not a state dict or a saved run")
    if _is_state_dict(obj):
        s = 0 if step is None else step
        return PeerFile(
            "state_dict",
            [(s, _state_dict(obj, "the state dict"), "the state dict")],
            step_rule="--step" if step is not None else "a bare state dict: step 0 unless --step",
        )
    pf = PeerFile("", [])
    cfg = obj.get("config")
    if isinstance(cfg, dict):
        pf.raw_config = _json_safe(cfg)
        for theirs, ours in CONFIG_KEYS.items():
            if theirs in cfg:
                v = cfg[theirs]
                pf.config[ours] = NANDA_FNS.get(v, v) if theirs == "fn_name" else v
    opt = obj.get("optimizer")
    if isinstance(opt, dict) and isinstance(opt.get("param_groups"), list) and opt["param_groups"]:
        g = opt["param_groups"][0]
        if isinstance(g, dict):
            pf.optimizer = _json_safe({k: v for k, v in g.items() if k != "params"})
    pf.train_losses, pf.test_losses = _floats(obj.get("train_losses")), _floats(obj.get("test_losses"))
    if pf.train_losses and pf.test_losses:
        pf.test_every = max(1, round(len(pf.train_losses) / len(pf.test_losses)))
    if "state_dicts" in obj:
        sds = obj["state_dicts"]
        if not isinstance(sds, (list, tuple)) or not sds:
            raise PeerFileError("key 'state_dicts' is not a non-empty list of state dicts")
        epochs = obj.get("checkpoint_epochs")
        if epochs is None:
            if every is None:
                raise PeerFileError("key 'state_dicts' comes without 'checkpoint_epochs': give --every N")
            steps = [first + i * every for i in range(len(sds))]
            pf.step_rule = f"entry i at step {first} + {every}·i (--first, --every)"
        else:
            if every is not None:
                raise PeerFileError(
                    "key 'checkpoint_epochs' gives the steps: --every and --first are not needed"
                )
            if not isinstance(epochs, (list, tuple)) or len(epochs) != len(sds):
                n = len(epochs) if isinstance(epochs, (list, tuple)) else type(epochs).__name__
                raise PeerFileError(
                    f"key 'checkpoint_epochs' ({n}) does not match 'state_dicts' ({len(sds)})"
                )
            steps = [_step(e, f"key 'checkpoint_epochs' entry {i}") + 1 for i, e in enumerate(epochs)]
            pf.step_rule = "checkpoint epoch + 1 (Nanda's loop saves after the epoch's optimizer step)"
        if len(set(steps)) != len(steps) or steps != sorted(steps):
            raise PeerFileError("key 'checkpoint_epochs' is not strictly increasing")
        pf.format = "full_run"
        pf.states = [
            (s, _state_dict(sd, f"key 'state_dicts' entry {i}"), f"key 'state_dicts' entry {i}")
            for i, (s, sd) in enumerate(zip(steps, sds, strict=True))
        ]
        return pf
    if "model" in obj:
        pf.format = "saved_run"
        model = _state_dict(obj["model"], "key 'model'")
        s = step
        if s is None:
            sched = obj.get("scheduler")
            if isinstance(sched, dict) and "last_epoch" in sched:
                s = _step(sched["last_epoch"], "key 'scheduler.last_epoch'")
                pf.step_rule = "the scheduler's last_epoch (optimizer steps taken)"
            elif "epoch" in obj:
                s = _step(obj["epoch"], "key 'epoch'") + 1
                pf.step_rule = "epoch + 1 (Nanda's loop saves after the epoch's optimizer step)"
            elif pf.train_losses:
                s = len(pf.train_losses)
                pf.step_rule = "len(train_losses) (one loss per full-batch step)"
            else:
                raise PeerFileError("key 'model' comes with no epoch, scheduler or losses: give --step N")
        else:
            pf.step_rule = "--step"
        pf.states = [(s, model, "key 'model'")]
        return pf
    keys = ", ".join(repr(k) for k in list(obj)[:6])
    raise PeerFileError(f"a dict with keys {keys}: no 'model', 'state_dicts' or state dict to import")
