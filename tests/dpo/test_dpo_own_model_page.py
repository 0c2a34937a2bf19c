"""docs/dpo-own-model.md runs as written: its script makes the tiny model, its shell blocks train (SFT and DPO with
LoRA, checkpointing, a resume; the RL step with LoRA; DPO sharded over 2 processes and resumed) and export, and its
Python blocks train through the API and load the exports; what they print and write is checked (losses, adapter-only
checkpoints, exported models equal to each other)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft", reason="peft (the `lora` extra) is not installed")
pytest.importorskip("transformers", reason="transformers (the `hf` extra) is not installed")

PAGE = Path(__file__).parents[2] / "docs" / "dpo-own-model.md"


def blocks(language: str) -> list[str]:
    """The page's fenced blocks opened with ```language (``` alone: language "")."""
    found, current, opened = [], [], None
    for line in PAGE.read_text().splitlines():
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                if opened == language:
                    found.append("\n".join(current) + "\n")
                opened = None
        elif opened is not None:
            current.append(line)
    return found


def losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


@pytest.mark.slow
def test_the_page_runs_as_written(tmp_path, monkeypatch):
    make, api, load = blocks("python")
    assert make.startswith("# make_tiny_hf.py")
    (tmp_path / "make_tiny_hf.py").write_text(make)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for script in blocks(""):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    dpo = losses(tmp_path / "runs" / "own-dpo")
    assert dpo[1] < dpo[0] < 0.6931  # from log 2 (policy = reference at the start), down; one row per 10 steps
    checkpoint = tmp_path / "runs" / "own-dpo" / "checkpoints" / "last.safetensors"
    from paperzoo.engine.checkpoint import read_checkpoint

    tensors, meta = read_checkpoint(checkpoint)
    assert meta["step"] == 20 and meta["model_state"] == "partial"
    assert all("lora_" in k for k in tensors if k.startswith("model."))
    assert (tmp_path / "exported" / "own-dpo-adapter" / "adapter_model.safetensors").is_file()

    rows = [json.loads(line) for line in (tmp_path / "runs" / "own-rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kl"] for r in rows if r["split"] == "train"][0] == 0.0  # the reference: the policy without adapters
    tensors, meta = read_checkpoint(tmp_path / "runs" / "own-rl" / "checkpoints" / "last.safetensors")
    assert meta["model_state"] == "partial" and all("lora_" in k for k in tensors if k.startswith("model."))
    tensors, meta = read_checkpoint(tmp_path / "runs" / "own-fsdp" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 10 and meta["model_state"] == "partial"  # sharded over 2 processes, then resumed
    assert meta["extra"]["rng_per_rank"][1] != meta["extra"]["rng_per_rank"][0]
    assert len(losses(tmp_path / "runs" / "own-fsdp")) == 2  # steps 6 and 10: one row per 10 steps, and the last

    monkeypatch.chdir(tmp_path)
    api_names: dict = {}
    exec(compile(api, "dpo-own-model.md (API)", "exec"), api_names)
    _, api_losses = api_names["result"].history.series("train", "loss")
    assert api_losses[-1] < api_losses[0]
    names: dict = {}
    exec(compile(load, "dpo-own-model.md (load)", "exec"), names)
    ids = torch.randint(3, 30, (2, 10))
    sft = names["AutoModelForCausalLM"].from_pretrained(tmp_path / "exported" / "own-sft")
    with torch.no_grad():
        merged, adapted, base = (model(ids).logits for model in (names["merged"], names["adapted"], sft))
    torch.testing.assert_close(adapted, merged, rtol=1e-5, atol=1e-5)
    assert (merged - base).abs().max() > 1e-4  # DPO changed the fine-tuned model
