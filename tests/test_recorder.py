"""The writer's primitives on their own: atomic replacement, appends that never follow a link, and a
resume's truncation that survives rows a damaged file may hold."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from grok_tui import runs
from grok_tui.recorder import Recorder, append_jsonl, update_status, write_json_atomic


def test_json_is_replaced_whole_with_the_umask_permissions(tmp_path: Path) -> None:
    path = tmp_path / "run" / runs.STATUS
    write_json_atomic(path, {"state": "queued"})
    update_status(path.parent, step=5)
    assert json.loads(path.read_text())["state"] == "queued" and json.loads(path.read_text())["step"] == 5
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(path.parent) == [runs.STATUS]  # no temporary file left behind


def test_an_append_never_follows_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / runs.METRICS).symlink_to(target)
    with pytest.raises(OSError):
        append_jsonl(tmp_path / runs.METRICS, {"step": 0})
    assert target.read_text() == ""


BAD_ROWS = [
    '{"step": "abc"}', '{"train_acc": 1.0}', '{"step": 1e400}', '{"step": NaN}', '{"step": true}',
    '{"step": 2.5}', '[1, 2]', '{"step": null}', "not json", '{"step": 50',
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_truncation_drops_unplaceable_rows_and_keeps_every_good_one(tmp_path: Path, bad: str) -> None:
    rec = Recorder(tmp_path)
    good = [{"step": s, "train_acc": s / 300} for s in (0, 100, 200, 300)]
    lines = [json.dumps(r) for r in good]
    lines.insert(2, bad)
    (tmp_path / runs.METRICS).write_text("\n".join(lines) + "\n")
    (tmp_path / runs.FOURIER).write_text(json.dumps({"step": 100.0, "embed": [1.0]}) + "\n")
    rec.truncate_after(200)
    assert runs.read_jsonl(tmp_path / runs.METRICS) == good[:3]
    assert runs.read_jsonl(tmp_path / runs.FOURIER) == [{"step": 100.0, "embed": [1.0]}]
