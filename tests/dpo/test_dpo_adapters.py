"""LoRA adapters (Hu et al. 2021, arXiv 2106.09685) and gradient checkpointing for the preference pipeline.

The policy that is its own reference (adapters disabled) against a separate frozen copy, in DPO and in the RL step;
checkpoints that hold the adapters only, resume exactly and load merged; the exported Hugging Face folders against
the trained model; checkpointed against plain losses and gradients on a tiny GPT-2 built from a config. `make test`
installs the `lora` and `hf` extras; elsewhere these are skipped."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dpo_helpers import TOK, lora_dpo_run, tiny_lm, toy_pairs

from paperzoo import config
from paperzoo.dpo.adapters import LoRAConfig, adapter_state, adapters_disabled, with_lora
from paperzoo.dpo.cli import TRAIN_METHODS, load_lm, load_reward_model
from paperzoo.dpo.data import PreferencePairs, Sequences
from paperzoo.dpo.export import export_adapter, export_model, main as export_main
from paperzoo.dpo.methods import DPO, AdaptedReinforce, pair_rewards
from paperzoo.dpo.model import TinyGPTConfig
from paperzoo.dpo.recompute import enable_checkpointing
from paperzoo.engine.checkpoint import load_checkpoint, read_checkpoint
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import ConfigError, UserError
from paperzoo.multigpu.launch import spawn_group

peft = pytest.importorskip("peft", reason="peft (the `lora` extra) is not installed")
try:
    import transformers
    from test_dpo_hf import ROWS, char_tokenizer, gpt2
except ImportError:
    transformers = None
needs_hf = pytest.mark.skipif(transformers is None, reason="transformers (the `hf` extra) is not installed")

TINY = ["tiny.hidden_size=16", "tiny.layers=1", "tiny.heads=2", "tiny.context=40"]
FAST = ["train.steps=4", "train.batch_size=8", "train.progress=false", "train.device=cpu", "train.log_every=1",
        "train.lr=0.01"]
PAIRS = ["pairs=16"]


def test_make_test_installs_the_lora_extra():
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed-dev:")[1].split("\n\n")[0]
    assert "lora" in re.search(r"pip install .*-e '\.\[([^\]]*)\]'", recipe).group(1).split(",")


def logits(model, ids):
    with torch.no_grad():
        return model(ids, attention_mask=torch.ones_like(ids)).logits


def test_a_lora_model_starts_as_the_pretrained_one_and_trains_only_its_adapters():
    base = tiny_lm()
    pretrained = copy.deepcopy(base)
    policy = with_lora(base, LoRAConfig(r=4))
    ids = torch.randint(3, TOK.vocab_size, (2, 10))
    torch.testing.assert_close(logits(policy, ids), logits(pretrained, ids), rtol=0, atol=0)  # B = 0 at the start
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    assert (logits(policy, ids) - logits(pretrained, ids)).abs().max() > 1e-3
    with adapters_disabled(policy) as reference:
        torch.testing.assert_close(logits(reference, ids), logits(pretrained, ids), rtol=0, atol=0)
    assert policy.training  # the mode it had before


def lora_dpo(own_reference: bool, precompute: bool, steps: int = 3):
    """(adapter tensors, logged losses) of LoRA DPO, the reference being the policy with its adapters disabled or a
    separate frozen copy of the pretrained model."""
    base = tiny_lm()
    reference = None if own_reference else copy.deepcopy(base)
    method = DPO(lambda: with_lora(base, LoRAConfig(r=4)), reference, toy_pairs(32, 0), beta=0.5,
                 precompute_reference=precompute)
    cfg = TrainConfig(steps=steps, batch_size=8, optimizer="sgd", momentum=0.0, lr=0.5, log_every=1, device="cpu",
                      progress=False, seed=3)
    result = Trainer(method, cfg).fit()
    return adapter_state(result.model), result.history.series("train", "loss")[1]


@pytest.mark.parametrize("precompute", [True, False])
def test_the_policy_with_adapters_disabled_is_the_same_reference_as_a_frozen_copy(precompute):
    adapters, losses = lora_dpo(own_reference=True, precompute=precompute)
    copied, copied_losses = lora_dpo(own_reference=False, precompute=precompute)
    assert losses == copied_losses and losses[0] == pytest.approx(0.693147, abs=1e-6)  # log 2: policy = reference
    assert max(adapters[n].abs().max() for n in adapters if "lora_B" in n) > 1e-3  # the adapters trained
    assert adapters.keys() == copied.keys()
    for name in adapters:
        torch.testing.assert_close(adapters[name], copied[name], rtol=0, atol=0)


def test_two_rank_ddp_lora_equals_one_process_on_the_union_batch():
    """The reference forward of a LoRA policy under DDP (adapters disabled on the module inside the wrapper): 2 ranks
    x 8 pairs take the same steps as 1 process x 16 pairs."""
    ranks = spawn_group(lora_dpo_run, world_size=2, args=(8,), timeout_s=300)
    union, union_losses = lora_dpo_run(16)
    half, _ = lora_dpo_run(8)
    assert ranks[0] == ranks[1]  # DDP keeps the adapters equal
    assert ranks[0][1] == pytest.approx(union_losses, abs=1e-6)
    assert (torch.tensor(ranks[0][0]) - torch.tensor(union)).abs().max() < 1e-6
    assert (torch.tensor(half) - torch.tensor(union)).abs().max() > 1e-4  # 8 pairs differ from 16


def test_own_reference_needs_adapters():
    base = tiny_lm()
    with pytest.raises(ConfigError, match="policy has no LoRA adapters"):
        DPO(lambda: base, None, toy_pairs(8, 0)).build_model()


def train(name, overrides, out, resume=False):
    """What `paperzoo train NAME OVERRIDES --out OUT [--resume]` does in a fresh process: (checkpoint, result)."""
    torch.manual_seed(0)  # `tiny` is drawn from the global RNG, as a new process draws it
    spec = TRAIN_METHODS[name]
    cfg = config.apply_overrides(spec.config(), overrides)
    result = Trainer(spec.build(cfg), cfg.train, out_dir=out, run_config={"method": name, **config.to_dict(cfg)}
                     ).fit(resume)
    return out / "checkpoints" / "last.safetensors", result


def test_a_lora_checkpoint_holds_the_adapters_and_resumes_exactly(tmp_path):
    args = TINY + FAST + PAIRS + ["lora.r=4", "train.schedule=constant"]
    checkpoint, straight = train("dpo", args, tmp_path / "straight")
    tensors, meta = read_checkpoint(checkpoint)
    saved = {k[len("model."):] for k in tensors if k.startswith("model.")}
    assert meta["model_state"] == "partial" and saved == set(adapter_state(straight.model))
    assert saved and all("lora_" in k for k in saved)
    train("dpo", [*args, "train.steps=2"], tmp_path / "resumed")
    _, resumed = train("dpo", args, tmp_path / "resumed", resume=True)
    assert resumed.history.series("train", "loss") == straight.history.series("train", "loss")
    for name, value in adapter_state(straight.model).items():
        torch.testing.assert_close(adapter_state(resumed.model)[name], value, rtol=0, atol=0)


def test_a_full_checkpoint_is_unchanged_by_the_adapter_support(tmp_path):
    checkpoint, result = train("dpo", TINY + FAST + PAIRS, tmp_path / "full")
    tensors, meta = read_checkpoint(checkpoint)
    assert "model_state" not in meta
    assert {k[len("model."):] for k in tensors if k.startswith("model.")} == set(result.model.state_dict())


def test_a_lora_checkpoint_loads_merged_and_chains_into_the_next_step(tmp_path):
    """SFT with adapters -> its checkpoint loads as one plain model (the update merged) -> DPO with new adapters."""
    sft, result = train("dpo_sft", TINY + FAST + ["lora.r=4"], tmp_path / "sft")
    model, _ = load_lm(str(sft), TinyGPTConfig())
    assert not any("lora" in n for n, _ in model.named_parameters())
    ids = torch.randint(3, TOK.vocab_size, (2, 12))
    torch.testing.assert_close(logits(model, ids), logits(result.model, ids), rtol=1e-5, atol=1e-5)
    _, dpo = train("dpo", TINY + FAST + PAIRS + [f"model={sft}", "lora.r=2"], tmp_path / "dpo")
    assert dpo.history.series("train", "loss")[1][0] == pytest.approx(0.6931, abs=1e-3)  # policy = reference


def test_a_lora_reward_model_saves_adapters_and_head_and_loads_the_same_rewards(tmp_path):
    checkpoint, result = train("dpo_reward", TINY + FAST + PAIRS + ["lora.r=4"], tmp_path / "rm")
    tensors, _ = read_checkpoint(checkpoint)
    saved = {k[len("model."):] for k in tensors if k.startswith("model.")}
    assert {"head.weight", "head.bias"} < saved and all("lora_" in k or k.startswith("head.") for k in saved)
    loaded = load_reward_model(str(checkpoint))
    batch = toy_pairs(4, 0)[:]
    with torch.no_grad():
        expected, got = pair_rewards(result.model, batch), pair_rewards(loaded, batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert expected[0].abs().max() > 0  # the head trained


def test_a_checkpoint_of_other_adapters_is_refused(tmp_path):
    checkpoint, _ = train("dpo", TINY + FAST + PAIRS + ["lora.r=4"], tmp_path / "r4")
    spec = TRAIN_METHODS["dpo"]
    cfg = config.apply_overrides(spec.config(), TINY + FAST + PAIRS + ["lora.r=4", "lora.target_modules=proj"])
    method = spec.build(cfg)
    model = method.build_model()
    with pytest.raises(UserError, match="not in the model"):
        load_checkpoint(checkpoint, model=model)


def test_lora_settings_are_checked():
    with pytest.raises(ConfigError, match="lora.r must be >= 0"):
        config.apply_overrides(TRAIN_METHODS["dpo"].config(), ["lora.r=-1"])
    with pytest.raises(ConfigError, match="lora.alpha must be > 0"):
        config.apply_overrides(TRAIN_METHODS["dpo_sft"].config(), ["lora.alpha=0"])
    with pytest.raises(ConfigError, match="already holds LoRA adapters"):
        with_lora(with_lora(tiny_lm(), LoRAConfig(r=2)).get_base_model(), LoRAConfig(r=2))
    with pytest.raises(ConfigError, match="Hugging Face model"):
        enable_checkpointing(tiny_lm())


# --- Hugging Face models ---------------------------------------------------------------------------------------

def gpt2_with_dropout(seed=0):
    """GPT-2's own dropout (0.1 everywhere), loaded as from_pretrained leaves it: eval mode."""
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=30, n_positions=32, n_embd=32, n_layer=3, n_head=2, bos_token_id=1,
                                  eos_token_id=2, pad_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def loss_and_grads(model, pairs, reference):
    """DPO loss of one batch, the gradients of the trainable parameters, and how many tensors autograd saved."""
    saved = []
    method = DPO(lambda: model, reference, pairs, beta=0.5, precompute_reference=False)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(1) or t, lambda t: t):
        loss = method.losses(model, pairs[:])[0].mean()
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}, len(saved)


@needs_hf
@pytest.mark.parametrize("lora", [False, True])
def test_checkpointing_gives_the_plain_runs_loss_and_gradients(lora):
    pairs = PreferencePairs.from_rows(ROWS * 2, char_tokenizer(), max_length=16, max_prompt_length=8)
    plain = gpt2_with_dropout()
    reference = gpt2_with_dropout(seed=1)  # rewards away from zero
    if lora:
        plain = with_lora(plain, LoRAConfig(r=4))
        with torch.no_grad():  # B = 0 would give A no gradient
            for name, p in plain.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.1)
        with adapters_disabled(plain):
            pass
        assert not any(m.training for m in plain.modules())  # every module keeps its mode: dropout stays off
    checkpointed = enable_checkpointing(copy.deepcopy(plain))
    loss, grads, saved = loss_and_grads(plain, pairs, reference)
    loss_ckpt, grads_ckpt, saved_ckpt = loss_and_grads(checkpointed, pairs, reference)
    assert checkpointed.training and not plain.training  # checkpointing runs in training mode, dropout at 0
    torch.testing.assert_close(loss_ckpt, loss, rtol=1e-6, atol=1e-7)
    assert grads.keys() == grads_ckpt.keys() and len(grads) == (3 * 2 if lora else len(list(plain.parameters())))
    for name, grad in grads.items():
        assert grad.abs().max() > 0
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7)
    assert saved_ckpt < saved / 2  # the layers' activations were not kept


@needs_hf
def test_export_a_lora_dpo_run_as_a_peft_adapter_and_as_a_merged_model(tmp_path):
    gpt2().save_pretrained(tmp_path / "hf")
    char_tokenizer().save_pretrained(tmp_path / "hf")
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 8))
    args = [f"model={tmp_path / 'hf'}", f"data={data}", "max_length=16", "max_prompt_length=8", "lora.r=4",
            "gradient_checkpointing=true", *FAST]
    checkpoint, result = train("dpo", args, tmp_path / "dpo")
    ids = torch.randint(3, 30, (2, 12))
    trained = logits(result.model, ids)

    merged = export_model(checkpoint, tmp_path / "merged")
    model = transformers.AutoModelForCausalLM.from_pretrained(merged, local_files_only=True)
    torch.testing.assert_close(logits(model, ids), trained, rtol=1e-5, atol=1e-5)
    assert transformers.AutoTokenizer.from_pretrained(merged).pad_token_id == 0

    assert export_main([str(checkpoint), str(tmp_path / "adapter"), "--adapter"]) == 0
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["base_model_name_or_path"] == str(tmp_path / "hf")
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert (logits(base, ids) - trained).abs().max() > 1e-4  # the adapters changed the model
    reloaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter")
    torch.testing.assert_close(logits(reloaded, ids), trained, rtol=1e-5, atol=1e-5)


def test_export_refuses_what_it_cannot_write(tmp_path):
    checkpoint, _ = train("dpo", TINY + FAST + PAIRS, tmp_path / "full")
    with pytest.raises(UserError, match="trained every weight"):
        export_adapter(checkpoint, tmp_path / "a")
    with pytest.raises(UserError, match="TinyGPT, which has no Hugging Face format"):
        export_model(checkpoint, tmp_path / "m")


@pytest.mark.slow
@needs_hf
def test_the_memory_benchmark_runs_at_smoke_size(tmp_path):
    """benchmarks/dpo_lora_memory.py end to end: four rows, the memory ones with every variant's peak."""
    root = Path(__file__).parents[2]
    results = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "dpo_lora_memory.py"), "--smoke", "--results",
                           str(results)], cwd=root, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["peak memory LoRA / full DPO", "peak memory LoRA + checkpointing / full DPO",
                                         "step time LoRA / full", "step time LoRA + checkpointing / LoRA"]
    assert rows[0]["goal"] == "<= 0.6x" and rows[0]["status"] in ("met", "missed")
    assert all(r["ratio"] > 0 for r in rows)
    if sys.platform == "linux":
        assert set(rows[0]["values"]) == {"full MiB", "LoRA MiB", "LoRA + checkpointing MiB"}


# --- the RL step (dpo_rl) -------------------------------------------------------------------------------------

def lora_reinforce(own_reference: bool, steps: int = 3):
    """(adapter tensors, logged losses, logged KLs) of the RL step with LoRA, the reference being the policy with
    its adapters disabled or a separate frozen copy of the pretrained model; the reward counts "e" tokens."""
    from test_dpo_training import CountReward

    base = tiny_lm()
    reference = None if own_reference else copy.deepcopy(base)
    prompts = torch.tensor([TOK.encode("abcd"), TOK.encode("efgh")] * 8)
    data = Sequences(prompts, torch.ones_like(prompts), torch.zeros_like(prompts))
    method = AdaptedReinforce(lambda: with_lora(base, LoRAConfig(r=4)), reference, CountReward(TOK.encode("e")[0], 4),
                              data, kl_coef=0.5, samples_per_prompt=4, new_tokens=4)
    cfg = TrainConfig(steps=steps, batch_size=4, optimizer="sgd", momentum=0.0, lr=0.5, log_every=1, device="cpu",
                      progress=False, seed=3)
    result = Trainer(method, cfg).fit()
    history = result.history
    return adapter_state(result.model), history.series("train", "loss")[1], history.series("train", "kl")[1]


def test_rl_with_adapters_disabled_as_reference_equals_a_frozen_copy():
    adapters, losses, kls = lora_reinforce(own_reference=True)
    copied, copied_losses, copied_kls = lora_reinforce(own_reference=False)
    assert losses == copied_losses and kls == copied_kls
    assert kls[0] == 0.0 and max(map(abs, kls[1:])) > 1e-4  # log(pi/pi_ref) = 0 until the adapters move
    assert max(adapters[n].abs().max() for n in adapters if "lora_B" in n) > 1e-3  # the adapters trained
    assert adapters.keys() == copied.keys()
    for name in adapters:
        torch.testing.assert_close(adapters[name], copied[name], rtol=0, atol=0)


def test_a_lora_rl_checkpoint_holds_the_adapters_resumes_exactly_and_loads_merged(tmp_path):
    sft, _ = train("dpo_sft", TINY + FAST, tmp_path / "sft")
    reward, _ = train("dpo_reward", TINY + FAST + PAIRS + [f"model={sft}"], tmp_path / "rm")
    args = TINY + FAST + ["prompts=16", "samples_per_prompt=2", "new_tokens=4", "lora.r=4", "train.schedule=constant",
                          f"model={sft}", f"reward_model={reward}"]
    checkpoint, straight = train("dpo_rl", args, tmp_path / "rl")
    tensors, meta = read_checkpoint(checkpoint)
    saved = {k[len("model."):] for k in tensors if k.startswith("model.")}
    assert meta["model_state"] == "partial" and saved == set(adapter_state(straight.model))
    assert saved and all("lora_" in k for k in saved)
    assert straight.history.series("train", "kl")[1][0] == 0.0  # the reference is the policy without adapters
    train("dpo_rl", [*args, "train.steps=2"], tmp_path / "resumed")
    _, resumed = train("dpo_rl", args, tmp_path / "resumed", resume=True)
    assert resumed.history.series("train", "loss") == straight.history.series("train", "loss")
    model, _ = load_lm(str(checkpoint), TinyGPTConfig())  # the adapters merged into a plain model
    assert not any("lora" in n for n, _ in model.named_parameters())
    ids = torch.randint(3, TOK.vocab_size, (2, 12))
    torch.testing.assert_close(logits(model, ids), logits(straight.model, ids), rtol=1e-5, atol=1e-5)
