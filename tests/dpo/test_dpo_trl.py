"""LoRA DPO (Rafailov et al., arXiv 2305.18290, Eq. 7) against TRL's `DPOTrainer` with the same `peft_config`: on a
2-layer GPT-2 built from a config and the same first batch, with the same initial adapters (B drawn away from 0, so
the policy differs from its reference, the model with its adapters disabled), the loss, TRL's logged rewards and
log-probs, and the adapters' gradients are equal.

TRL is not a dependency of paperzoo: it comes with the optional `bench-trl` extra (`pip install -e
'.[bench-trl,lora]'`), and without it this file is skipped."""

import copy
import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch

pytest.importorskip("peft", reason="peft (the `lora` extra) is not installed")
pytest.importorskip("trl", reason="TRL (the optional `bench-trl` extra) is not installed")
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from dpo_step import BATCH, BETA, MAX_LENGTH, MAX_PROMPT, Plan, hf_setup, preference_rows, trl_trainer  # noqa: E402

from paperzoo.dpo.adapters import LoRAConfig, adapter_state, peft_config, with_lora  # noqa: E402
from paperzoo.dpo.data import PreferencePairs  # noqa: E402
from paperzoo.dpo.methods import DPO  # noqa: E402

LORA = LoRAConfig(r=4, alpha=8.0)


def ours(model, tok, rows):
    """(loss, TRL-named metrics, adapter gradients, initial adapters) of our LoRA DPO on the first batch."""
    policy = with_lora(copy.deepcopy(model), LORA).train()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for name, p in policy.named_parameters():
            if "lora_B" in name:  # B = 0 would make the policy its reference: every loss log 2
                p.copy_(torch.randn(p.shape, generator=generator))
    initial = {name: p.detach().clone() for name, p in adapter_state(policy).items()}
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    method = DPO(lambda: policy, None, pairs, beta=BETA, precompute_reference=False)
    losses, metrics = method.losses(method.build_model(), pairs[slice(0, BATCH)])
    losses.mean().backward()
    grads = {name: p.grad for name, p in adapter_state(policy).items()}
    return losses.mean().detach(), metrics, grads, initial


def trl(model, tok, rows, initial):
    """The same through TRL's `DPOTrainer(ref_model=None, peft_config=...)` and its `compute_loss`."""
    config = peft_config(model, LORA)
    with tempfile.TemporaryDirectory() as out, mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}):
        trainer = trl_trainer(copy.deepcopy(model), None, tok, rows, out, Plan(1, 0, torch.device("cpu")),
                              cached=False, peft_config=config)
    policy = trainer.model
    assert set(adapter_state(policy)) == set(initial)  # the same layers adapted, under the same names
    with torch.no_grad():
        for name, p in adapter_state(policy).items():
            p.copy_(initial[name])
    inputs = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)]))
    policy.train()
    loss = trainer.compute_loss(policy, inputs)
    loss.backward()
    metrics = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    return loss.detach(), metrics, {name: p.grad for name, p in adapter_state(policy).items()}


def test_the_first_lora_dpo_step_equals_trls_with_the_same_peft_config():
    model, tok = hf_setup(seed=0)
    rows = preference_rows()[:BATCH]
    loss, metrics, grads, initial = ours(model, tok, rows)
    trl_loss, trl_metrics, trl_grads = trl(model, tok, rows, initial)
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-6)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected"):
        assert float(metrics[key]) == pytest.approx(float(trl_metrics[key]), rel=1e-4, abs=1e-5), key
    assert grads.keys() == trl_grads.keys() and len(grads) == 2 * 2  # A and B of c_attn in each of 2 layers
    for name, grad in grads.items():
        assert grad.abs().max() > 0
        torch.testing.assert_close(trl_grads[name], grad, rtol=1e-4, atol=1e-7, msg=name)
    assert abs(loss.item() - 0.693147) > 1e-3  # the adapters moved the policy away from its reference
