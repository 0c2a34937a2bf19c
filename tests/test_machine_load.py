"""The load sampler that `reproduce` records beside its wall time."""

import os
import time

import pytest

from paperzoo.machine_load import LoadSampler


def test_samples_on_open_close_and_every_interval():
    with LoadSampler(every=0.05) as load:
        time.sleep(0.3)
    summary = load.summary()
    assert summary["samples"] >= 3  # open + close + at least one of the six 0.05 s ticks in 0.3 s
    assert 0 <= summary["mean"] <= summary["max"]
    assert summary["max"] == round(max(load.samples), 2)
    assert summary["cores"] == os.cpu_count()
    assert not load._thread.is_alive()


def test_rejects_a_non_positive_interval():
    with pytest.raises(ValueError, match="every must be > 0"):
        LoadSampler(every=0)


@pytest.mark.parametrize("error", [AttributeError, OSError])
def test_a_platform_without_a_load_average_records_none(monkeypatch, error):
    def missing():
        raise error("no load average here")
    monkeypatch.setattr(os, "getloadavg", missing)
    with LoadSampler(every=0.05) as load:
        time.sleep(0.1)
    assert load.samples == []
    assert load.summary() is None
    assert not load._thread.is_alive()
