"""`paperzoo train dpo_sft | dpo_reward | dpo | dpo_rl`: configs, chaining checkpoints, JSONL data, clear errors."""

import json
import sys
import types

import pytest

from paperzoo import config
from paperzoo.dpo.cli import TRAIN_METHODS, load_lm, load_reward_model, read_preferences_prompts
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.engine.checkpoint import save_checkpoint
from paperzoo.engine.trainer import Trainer
from paperzoo.errors import ConfigError, DataError, UserError

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


def test_prompt_files_for_rl(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "a"}\n\n{"prompt": "b", "chosen": "c"}\n')
    assert read_preferences_prompts(str(data)) == ["a", "b"]
    data.write_text("\n  \n")
    with pytest.raises(DataError, match=r"prompt file .*prompts\.jsonl holds no rows; write one JSON object per line"):
        read_preferences_prompts(str(data))
    data.write_bytes(b'{"prompt": "a"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl:2: not UTF-8 text \(byte 28: .*\); save the file as UTF-8"):
        read_preferences_prompts(str(data))


def fake_checkpoint(path, method, model, hidden_size=16):
    """A checkpoint whose saved config starts from `model` (a TinyGPT of TINY's size unless told)."""
    tiny = TinyGPTConfig(vocab_size=CharTokenizer().vocab_size, context=40, hidden_size=hidden_size, layers=1, heads=2)
    save_checkpoint(path, model=TinyGPT(tiny), step=1,
                    config={"method": method, "model": str(model), "tiny": config.to_dict(tiny)})
    return path


def test_a_checkpoint_that_starts_from_itself_is_a_clear_error(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    fake_checkpoint(a, "dpo", a)
    with pytest.raises(UserError, match=rf"starts from itself .*: {a} -> {a}\. .*its own --out folder"):
        load_lm(str(a), TinyGPTConfig())
    fake_checkpoint(a, "dpo_sft", b)
    fake_checkpoint(b, "dpo", a)
    with pytest.raises(UserError, match=rf": {a} -> {b} -> {a}\."):
        load_lm(str(a), TinyGPTConfig())
    reward = fake_checkpoint(tmp_path / "rm.safetensors", "dpo_reward", tmp_path / "rm.safetensors")
    with pytest.raises(UserError, match=rf": {reward} -> {reward}\."):
        load_reward_model(str(reward))


def test_a_checkpoint_that_does_not_fit_its_source_is_a_clear_error(tmp_path):
    base, step = tmp_path / "base.safetensors", tmp_path / "step.safetensors"
    fake_checkpoint(step, "dpo", base)
    fake_checkpoint(base, "dpo_sft", "tiny", hidden_size=8)  # base trained again, smaller, after `step` started from it
    assert load_lm(str(base), TinyGPTConfig())[0].config.hidden_size == 8
    with pytest.raises(UserError, match=rf"checkpoint {step} does not fit the model its saved config builds from "
                                        rf"model='{base}' \(size mismatch for .*\); .*train this step again"):
        load_lm(str(step), TinyGPTConfig())


def test_hf_folders_never_run_their_own_code(tmp_path, monkeypatch):
    """A model folder's custom code (trust_remote_code) is refused up front; checked with stand-ins for the
    transformers classes, so that it runs without transformers too."""
    calls = []

    class Recorder:
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append((cls.__name__, kwargs))
            return cls()

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer = type("AutoTokenizer", (Recorder,), {})
    fake.AutoModelForCausalLM = type("AutoModelForCausalLM", (Recorder,), {})
    monkeypatch.setitem(sys.modules, "transformers", fake)
    (tmp_path / "config.json").write_text("{}")
    load_lm(str(tmp_path), TinyGPTConfig())
    assert sorted(name for name, _ in calls) == ["AutoModelForCausalLM", "AutoTokenizer"]
    assert all(kwargs == {"local_files_only": True, "trust_remote_code": False} for _, kwargs in calls)
