"""Scenes, questions answered from the scene graph, exact edits, the model, and the claims at smoke preset."""

import statistics
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from paperzoo.causal_vqa import (ANSWERS, SAAA, Obj, Question, Scene, cv_candidates, edits_of, iv_candidates,
                                 make_examples, render)
from paperzoo.causal_vqa.data import OBJECT_CLASSES, WORDS, encode_question, object_grid
from paperzoo.causal_vqa.experiments import CLAIMS
from paperzoo.causal_vqa.model import readout, symmetric_kl
from paperzoo.causal_vqa.scenes import BACKGROUND_MAX, COLORS, CUE_RGB, SHAPES, area_fraction, background, draw
from paperzoo.causal_vqa.train import CausalVQAConfig, CausalVQAMethod, reliance
from paperzoo.claims import RunContext, run_claim
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import UserError

SCENE = Scene((Obj("circle", "red", "small", 6, 6), Obj("circle", "red", "large", 20, 6),
               Obj("square", "blue", "small", 6, 22), Obj("cross", "white", "large", 22, 22)), background_seed=7)


def test_answers_from_hand_made_scene():
    assert Question("count", color="red", shape="circle").answer(SCENE) == "2"
    assert Question("count", shape="square").answer(SCENE) == "1"
    assert Question("count", color="green").answer(SCENE) == "0"
    assert Question("exists", color="blue", shape="square").answer(SCENE) == "yes"
    assert Question("exists", color="red", shape="square").answer(SCENE) == "no"
    assert Question("query_color", shape="square").answer(SCENE) == "blue"
    assert Question("query_color", shape="circle").answer(SCENE) is None  # two circles: not unique
    assert Question("query_shape", color="blue").answer(SCENE) == "square"
    assert Question("compare", shape="circle", other_shape="square").answer(SCENE) == "yes"
    assert Question("compare", shape="square", other_shape="triangle").answer(SCENE) == "yes"
    assert Question("compare", shape="triangle", other_shape="circle").answer(SCENE) == "no"
    with pytest.raises(UserError, match="unknown question kind"):
        Question("why")


def test_removal_is_exact_and_changes_only_that_object():
    full, edited = render(SCENE), render(SCENE.without(2))
    changed = (full != edited).any(0)  # (H, W)
    ys, xs = changed.nonzero(as_tuple=True)
    assert changed.any() and xs.min() >= 6 - 3 and xs.max() <= 6 + 3 and ys.min() >= 22 - 3 and ys.max() <= 22 + 3
    alone = Scene(SCENE.objects[:2] + SCENE.objects[3:], background_seed=7)
    assert torch.equal(edited, render(alone))  # identical to a scene drawn without it
    with pytest.raises(UserError, match="out of range"):
        SCENE.without(9)


def test_iv_and_cv_edits_follow_the_rules():
    q = Question("count", color="red", shape="circle")
    assert iv_candidates(SCENE, q) == [2, 3]  # never a red object or a circle
    assert cv_candidates(SCENE, q) == [0, 1]
    assert [Question("count", color="red", shape="circle").answer(SCENE.without(i)) for i in (0, 1)] == ["1", "1"]
    assert cv_candidates(SCENE, Question("exists", color="red", shape="circle")) == []
    assert iv_candidates(SCENE, q, max_area=0.05) == [2]  # the large cross covers more than 5%
    assert area_fraction(SCENE.objects[3], 32) > 0.05 > area_fraction(SCENE.objects[2], 32)
    # a box that touches a question object is protected: a blue square right next to the red circle
    crowded = Scene(SCENE.objects[:1] + (Obj("square", "blue", "small", 12, 6),), background_seed=1)
    assert iv_candidates(crowded, Question("exists", color="red", shape="circle")) == []


def test_generated_edits_never_remove_a_mentioned_object_and_keep_answers():
    examples = make_examples(150, seed=3, cue_bias=0.9)
    for edit in edits_of(examples, "iv"):
        ex = examples[edit.source]
        assert not ex.question.mentions(ex.scene.objects[edit.removed])
        assert edit.answer == ex.answer and len(edit.scene.objects) == len(ex.scene.objects) - 1
    cv = edits_of(examples, "cv")
    assert cv and all(int(examples[e.source].answer) == int(e.answer) + 1 for e in cv)
    assert make_examples(20, seed=3) == make_examples(20, seed=3)  # deterministic


@pytest.mark.parametrize("bias", [0.6, 0.9])
def test_cue_is_planted_at_the_configured_strength(bias):
    examples = make_examples(3000, seed=0, cue_bias=bias)
    share_with_cue = lambda answers: statistics.fmean(  # noqa: E731
        any(o.is_cue for o in e.scene.objects) for e in examples if e.answer in answers)
    assert share_with_cue({"yes"}) == pytest.approx(bias, abs=0.03)
    assert share_with_cue({"no"}) == pytest.approx(1 - bias, abs=0.03)
    assert share_with_cue(set(ANSWERS) - {"yes", "no"}) == pytest.approx(0.5, abs=0.03)  # independent of the cue


def test_the_cue_is_the_only_thing_brighter_than_any_background():
    assert max(int(background(seed, 32).max()) for seed in range(300)) <= BACKGROUND_MAX < min(CUE_RGB)
    assert all(min(rgb) <= BACKGROUND_MAX for rgb in COLORS.values())  # no object colour passes for the cue
    image = render(SCENE).permute(1, 2, 0) * 255  # (H, W, 3)
    cue_mask = Image.new("RGB", (32, 32))
    draw(ImageDraw.Draw(cue_mask), SCENE.objects[3], 32)
    assert torch.equal((image > BACKGROUND_MAX).all(-1), torch.from_numpy(np.asarray(cue_mask).any(-1)))


def test_model_shapes_gradients_and_errors():
    torch.manual_seed(0)
    model = SAAA(len(WORDS), len(ANSWERS), dim=16)
    images = torch.rand(3, 3, 32, 32)
    questions = torch.stack([encode_question(Question("count", color="red")),
                             encode_question(Question("exists", color="blue", shape="square")),
                             encode_question(Question("compare", shape="circle", other_shape="square"))])
    logits = model(images, questions)
    assert logits.shape == (3, len(ANSWERS)) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    _, _, attention_logits = model.attention(images, questions)
    assert attention_logits.shape == (3, 2, 64)  # two glimpses over the 8 x 8 grid
    with pytest.raises(ValueError, match="expected images"):
        model(images[:2], questions)
    a, b = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    p, q = a.softmax(-1), b.softmax(-1)
    expected = (p * (p / q).log()).sum() + (q * (q / p).log()).sum()
    assert float(symmetric_kl(a, b)) == pytest.approx(float(expected)) and float(symmetric_kl(a, a)) == 0.0


def test_object_grid_names_the_object_centred_in_each_cell():
    grid = object_grid(SCENE)  # centres (6, 6), (20, 6), (6, 22), (22, 22) in 4-pixel cells
    red_circle = 2 + SHAPES.index("circle") * len(COLORS) + list(COLORS).index("red")
    blue_square = 2 + SHAPES.index("square") * len(COLORS) + list(COLORS).index("blue")
    assert grid.shape == (8, 8) and int((grid > 0).sum()) == 4
    assert grid[1, 1] == red_circle and grid[1, 5] == red_circle  # row y // 4, column x // 4
    assert grid[5, 1] == blue_square and grid[5, 5] == 1  # the cue is class 1
    assert len({int(v) for v in object_grid(SCENE.without(0)).flatten()}) == 4  # one red circle left: 0, 1, 2 classes


def test_model_with_object_head_and_count_features():
    torch.manual_seed(0)
    model = SAAA(len(WORDS), len(ANSWERS), dim=16, object_classes=OBJECT_CLASSES, count_features=True)
    images = torch.rand(2, 3, 32, 32)
    questions = torch.stack([encode_question(Question("count", color="red"))] * 2)
    cells = model.object_logits(images)
    assert cells.shape == (2, OBJECT_CLASSES, 8, 8)
    (model(images, questions).sum() + cells.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.classify[0].in_features == 2 * 16 + 16 + 2  # two glimpses' features, the question, two masses


def test_the_attention_mass_counts_where_the_average_cannot():
    obj, empty = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    one = torch.stack([obj, empty, empty, empty], 1)[None]  # (1, D=2, N=4): one object among 4 cells
    two = torch.stack([obj, obj, empty, empty], 1)[None]  # two alike objects
    attend = lambda grid: torch.where(grid.abs().sum(1, keepdim=True) > 0, 20.0, -20.0)  # noqa: E731  (1, 1, 4)
    (avg_one, mass_one), (avg_two, mass_two) = readout(one, attend(one)), readout(two, attend(two))
    assert torch.allclose(avg_one, obj[None], atol=1e-6) and torch.allclose(avg_two, avg_one, atol=1e-6)
    assert mass_one.item() == pytest.approx(1, abs=1e-6) and mass_two.item() == pytest.approx(2, abs=1e-6)


def test_short_training_beats_majority_answer():
    cfg = CausalVQAConfig(train_examples=600, test_examples=300, dim=32,
                          train=TrainConfig(steps=120, batch_size=32, lr=3e-3, seed=0, progress=False))
    method = CausalVQAMethod(cfg)
    result = Trainer(method, cfg.train).fit()
    answers = [e.answer for e in method.train_examples]
    top = max(set(answers), key=answers.count)
    majority = sum(e.answer == top for e in method.test_examples) / len(method.test_examples)
    assert result.final["test_acc"] > majority + 0.05


def test_claims_run_at_smoke_over_seeds_with_the_blind_baseline(tmp_path):
    memo: dict = {}  # the claims share the models of each seed, as in `paperzoo reproduce`
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, memo=memo, seeds=[0, 1])) for c in CLAIMS}
    for result in results.values():
        assert result.verdict != "error", result.message
        assert all(len(v) == 2 for v in result.per_seed.values()), result.id
        assert result.preconditions and "uses the image" in result.preconditions[0]["text"]
    blind = results["causal_vqa.edits_flip_answers"].per_seed["blind_acc"]
    assert all(0 < acc < 1 for acc in blind)
    assert memo.keys() >= {f"causal_vqa/{seed}/{model}" for seed in (0, 1) for model in ("blind", "base", "originals",
                                                                                   "edits")}
    # a precondition that does not hold makes the claim inconclusive, never not_reproduced
    for result in results.values():
        if any(p["held"] is not True for p in result.preconditions):
            assert result.verdict == "inconclusive" and result.reason.startswith("precondition")


def test_blind_baseline_ignores_the_image():
    cfg = CausalVQAConfig(train_examples=64, test_examples=32, dim=16, blind=True,
                          train=TrainConfig(steps=1, batch_size=8, seed=0, progress=False))
    method = CausalVQAMethod(cfg)
    model = method.build_model()
    batch = [t[:8] for t in method.train_dataset().tensors]
    other_images = [torch.rand_like(batch[0]), *batch[1:]]  # the same questions over other pictures
    assert method.training_step(model, batch).loss.item() == method.training_step(model, other_images).loss.item()
    sighted = CausalVQAMethod(replace(cfg, blind=False))
    assert sighted.training_step(model, batch).loss.item() != sighted.training_step(model, other_images).loss.item()


def test_cue_reliance_by_hand():
    correct = torch.tensor([True, True, True, False, True, False])
    agrees = torch.tensor([True, True, False, False, True, False])  # agreeing: 3 of 3 right; disagreeing: 1 of 3
    r = reliance(correct, agrees)
    assert r["acc_cue_agrees"] == 1.0 and r["acc_cue_disagrees"] == pytest.approx(1 / 3)
    assert r["cue_reliance"] == pytest.approx(2 / 3) and r["cue_pairs"] == 3
