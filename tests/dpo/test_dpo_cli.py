"""`paperzoo train dpo_sft | dpo_reward | dpo | dpo_rl`: configs, chaining checkpoints, JSONL data, clear errors."""

import json

import pytest

from paperzoo import config
from paperzoo.dpo.cli import TRAIN_METHODS, load_lm
from paperzoo.engine.trainer import Trainer
from paperzoo.errors import ConfigError, DataError

TINY = ["tiny.hidden_size=16", "tiny.layers=1", "tiny.heads=2", "tiny.context=40"]
FAST = ["train.steps=2", "train.batch_size=8", "train.progress=false", "train.device=cpu"]


def train(name, overrides, out):
    """What `paperzoo train NAME OVERRIDES --out OUT` does."""
    spec = TRAIN_METHODS[name]
    cfg = config.apply_overrides(spec.config(), overrides)
    run_config = {"method": name, **config.to_dict(cfg)}
    Trainer(spec.build(cfg), cfg.train, out_dir=out, run_config=run_config).fit()
    return out / "checkpoints" / "last.safetensors"


def test_the_pipeline_chains_through_checkpoints(tmp_path):
    sft = train("dpo_sft", TINY + FAST, tmp_path / "sft")
    model, _ = load_lm(str(sft), config.apply_overrides(TRAIN_METHODS["dpo_sft"].config(), TINY).tiny)
    assert model.config.hidden_size == 16
    rm = train("dpo_reward", TINY + FAST + [f"model={sft}", "pairs=16"], tmp_path / "rm")
    dpo = train("dpo", TINY + FAST + [f"model={sft}", "pairs=16", "loss_type=ipo", "beta=0.5"], tmp_path / "dpo")
    rl = train("dpo_rl", TINY + FAST + [f"model={dpo}", f"reference={sft}", f"reward_model={rm}", "prompts=16",
                                        "new_tokens=4"], tmp_path / "rl")
    rows = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"} <= set(rows[0])
    assert rl.is_file()
    with pytest.raises(ConfigError, match="reward model goes in reward_model="):
        train("dpo", TINY + FAST + [f"model={rm}"], tmp_path / "bad")


def test_jsonl_preferences(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(16)]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train("dpo", TINY + FAST + [f"data={data}", "max_length=16", "max_prompt_length=8"], tmp_path / "dpo")
    train("dpo_sft", TINY + FAST + [f"data={data}", "max_length=16", "max_prompt_length=8"], tmp_path / "sft")
    data.write_text(json.dumps({"prompt": "q", "chosen": "c"}) + "\n")
    with pytest.raises(DataError, match="prefs.jsonl:1: missing field 'rejected'"):
        train("dpo", TINY + FAST + [f"data={data}"], tmp_path / "bad")


def test_clear_errors_for_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="needs reward_model="):
        train("dpo_rl", TINY + FAST, tmp_path / "rl")
    with pytest.raises(ConfigError, match="neither 'tiny'"):
        train("dpo", FAST + ["model=/nowhere"], tmp_path / "x")
    with pytest.raises(ConfigError, match="not a valid choice"):
        config.apply_overrides(TRAIN_METHODS["dpo"].config(), ["loss_type=kto"])
    with pytest.raises(ConfigError, match="label_smoothing applies to the sigmoid and robust losses"):
        train("dpo", TINY + FAST + ["pairs=8", "loss_type=hinge", "label_smoothing=0.1"], tmp_path / "y")
