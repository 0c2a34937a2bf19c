"""The AV-digits cache (issue #37): a damaged cache file is rebuilt with a message, and two processes saving the
same cache file at once do not collide (each writes through a temporary file of its own)."""

import subprocess
import sys

import pytest
import torch

from paperzoo.gblend import audio
from paperzoo.gblend.data import AVDigitsConfig, av_digits

needs_espeak = pytest.mark.skipif(not audio.espeak_available(), reason="espeak-ng not installed")


def _damages():
    yield "truncated", lambda data: data[: len(data) // 2]
    yield "not a torch file", lambda data: b"GIF89a not a cache"
    other = subprocess.run([sys.executable, "-c", "import io, sys, torch; b = io.BytesIO(); "
                            "torch.save({'x': torch.zeros(3)}, b); sys.stdout.buffer.write(b.getvalue())"],
                           capture_output=True, check=True).stdout
    yield "another object", lambda data: other


@needs_espeak
def test_a_damaged_cache_file_is_rebuilt_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    cfg = AVDigitsConfig(utterances_per_digit=2, seed=3)
    first = av_digits(cfg, progress=False)
    cached = {p.name.split("-")[0]: p for p in (tmp_path / "gblend").glob("*.pt")}
    assert set(cached) == {"av", "bank"}
    # every damage on the features file; on the bank (the same loader, and a rebuild of both files) the one its own
    # validity check must catch: a readable torch file holding another object
    damages = list(_damages())
    another_object = next(d for d in damages if d[0] == "another object")
    cases = [(what, damage, "av") for what, damage in damages] + [(*another_object, "bank")]
    for what, damage, name in cases:
        path = cached[name]
        path.write_bytes(damage(path.read_bytes()))
        if name == "bank":  # the bank is read only when the features are rebuilt
            cached["av"].unlink()
        again = av_digits(cfg, progress=False)
        err = capsys.readouterr().err
        assert f"the G-Blend cache file {path} is damaged" in err and "rebuilding it" in err, (what, name, err)
        for split in ("train", "val", "test"):
            assert torch.equal(getattr(again, split).audio, getattr(first, split).audio), (what, name, split)
    av_digits(cfg, progress=False)  # rebuilt files read back without a word
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "gblend").iterdir()) == sorted(p.name for p in cached.values())


SAVER = """
import sys, torch
from pathlib import Path
from paperzoo.gblend.data import _atomic_save
path, failures = Path(sys.argv[1]), 0
value = torch.full((1_000_000,), float(sys.argv[2]))
for _ in range(20):
    try:
        _atomic_save({"x": value}, path)
    except Exception:
        failures += 1
print(failures)
"""


def test_two_processes_saving_one_cache_file_do_not_collide(tmp_path):
    path = tmp_path / "shared.pt"
    savers = [subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(i)], stdout=subprocess.PIPE, text=True)
              for i in (1, 2)]
    failures = [int(s.communicate(timeout=600)[0]) for s in savers]
    assert failures == [0, 0]
    assert torch.load(path, weights_only=True)["x"][0].item() in (1.0, 2.0)  # one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["shared.pt"]  # no temporary file left
