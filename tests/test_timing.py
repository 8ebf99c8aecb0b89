"""semsmooth_core.timing: estimates scale linearly, the measurement is positive and in the right
ballpark of an independent timing, bad input is a SemsmoothError."""

from __future__ import annotations

import time

import pytest
import torch

from semsmooth_core.timing import estimate_seconds, format_duration, measure_seconds_per_forward
from semsmooth_core.validation import SemsmoothError


def test_estimate_is_linear_and_checked():
    assert estimate_seconds(0, 0.01) == 0
    assert estimate_seconds(1000, 0.002) == pytest.approx(2.0)
    assert estimate_seconds(3000, 0.002) == pytest.approx(3 * estimate_seconds(1000, 0.002))
    with pytest.raises(SemsmoothError):
        estimate_seconds(-1, 0.1)
    with pytest.raises(SemsmoothError):
        estimate_seconds(10, float("nan"))


class _Slow(torch.nn.Module):
    """Sleeps a known time per batch: seconds per input = delay / batch."""

    def __init__(self, delay: float):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.lin(x.flatten(1))


def test_measure_matches_a_known_delay():
    spf = measure_seconds_per_forward(_Slow(0.02), torch.zeros(1, 2, 2), batch_size=10)
    # 0.02 s per batch of 10 -> 0.002 s per input (sleep only overshoots)
    assert 0.002 <= spf < 0.002 * 5


def test_format_duration():
    assert format_duration(42) == "42 s"
    assert format_duration(210) == "3.5 min"
    assert format_duration(7200) == "2.0 h"
