"""What both training loops share: numpy's BLAS threads, the device, the rule for a diverged loss."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from grok_tui.training.common import DeviceError, limit_blas_threads, pick_device, stops_on_nan


def numpy_blas_threads() -> list[int]:
    return [
        i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]
    ]


def test_numpy_blas_is_limited_for_every_thread_and_restored_while_torch_keeps_its_own() -> None:
    torch_before = torch.get_num_threads()
    prev = limit_blas_threads(1)
    try:
        assert prev is not None and prev >= 1, threadpool_info()  # numpy's bundled OpenBLAS was found
        assert numpy_blas_threads() and set(numpy_blas_threads()) == {1}
        seen = []  # the RFM's Gram-matrix pool: Python threads each see the one-thread BLAS
        worker = threading.Thread(target=lambda: seen.extend(numpy_blas_threads()))
        worker.start()
        worker.join()
        assert set(seen) == {1}
        a = np.random.default_rng(0).standard_normal((256, 256))
        assert np.allclose(a @ a.T, (a @ a.T).T)
        assert torch.get_num_threads() == torch_before
    finally:
        assert limit_blas_threads(prev) == 1
    assert set(numpy_blas_threads()) == {prev}


def test_device_choice() -> None:
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"^CUDA unavailable: the run asks for device 'cuda:1'"):
            pick_device("cuda:1")


def test_on_nan_defaults_to_fail_for_old_specs() -> None:
    assert stops_on_nan({}) and stops_on_nan({"on_nan": "fail"})
    assert not stops_on_nan({"on_nan": "continue"})
