"""Training the VQA model with the engine, plain or robustified by edited images (Agarwal et al., CVPR 2020,
Sec. 6: the IV/CV-edited images are added to training as data augmentation; optionally a consistency loss ties the
predictions on an original and its IV edit).

Each training item carries the original example and, when one exists, one edit of it (a CV edit for a counting
question that allows one, else an IV edit): (image, question, answer, edited image, edited answer, edit kind).
Without augmentation the edit fields are ignored. With augmentation a step takes half a batch of items with both
their images, so that every model sees `batch_size` images per step: the same budget as the model it is compared
with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from paperzoo.causal_vqa.data import OBJECT_CLASSES, WORDS, Edit, Example, edits_of, make_examples, object_grid, tensors
from paperzoo.causal_vqa.metrics import Pair, flip_metrics
from paperzoo.causal_vqa.model import SAAA, symmetric_kl
from paperzoo.causal_vqa.questions import ANSWERS
from paperzoo.config import at_least, require
from paperzoo.engine.trainer import StepOutput, TrainConfig

NO_EDIT, IV, CV = 0, 1, 2
MIN_IMAGE_SIZE = 16  # objects at least 5 px wide (scenes.half_width scales with image_size / 32)


@dataclass
class CausalVQAConfig:
    """`paperzoo train causal_vqa`: the SAAA-style model on generated scenes, with the paper's robustification."""

    train_examples: int = 4000
    """Generated training examples (scene, question, answer)."""
    test_examples: int = 1000
    """Generated test examples, from other scenes."""
    image_size: int = 32
    """Side of the rendered scenes in pixels."""
    cue_bias: float = 0.9  # P(cue | yes) = P(no cue | no) in the training scenes; -1 = no correlation
    """P(cue | yes) = P(no cue | no) in the training scenes (the spurious context); -1 = no correlation."""
    augment: bool = False  # add the edited images to training (the paper's robustification)
    """Add the edited images to training (the paper's robustification)."""
    consistency: float = 0.0  # weight of the symmetric KL between original and IV-edited predictions
    """Weight of the symmetric KL between the predictions on original and IV-edited images."""
    blind: bool = False  # the question-only baseline: every image is replaced by a blank one, in training and tests
    """The question-only baseline: every image is replaced by a blank one, in training and tests."""
    max_area: float = 0.1  # the paper's rule: remove only objects covering <= 10% of the image
    """Remove only objects covering at most this fraction of the image (the paper's 10%)."""
    dim: int = 64
    """Width of the model (image grid channels and LSTM state)."""
    object_loss: float = 0.0
    """Weight of the auxiliary loss that names the object centred in each cell of the image grid (the scene graph's
    shape and colour), a stand-in for the object-supervised features of the paper's models; 0 = none."""
    count_features: bool = False
    """Give the classifier each glimpse's attention mass (the sum of sigmoid attention logits), which can count
    where the softmax average cannot."""
    data_seed: int = 0
    """Seed of the generated scenes and questions."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1500, batch_size=64, lr=2e-3,
                                                                     schedule="cosine", log_every=50))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "train_examples", "test_examples", "dim")
        at_least(self, prefix, 0, "consistency")
        require(self.image_size >= MIN_IMAGE_SIZE, prefix + "image_size", self.image_size,
                f">= {MIN_IMAGE_SIZE} (smaller scenes draw 3-pixel objects whose shapes cannot be told apart; the "
                "default is 32)")
        require(self.cue_bias <= 1, prefix + "cue_bias", self.cue_bias, "a probability <= 1 (or -1: no correlation)")
        require(0 < self.max_area <= 1, prefix + "max_area", self.max_area, "a fraction of the image in (0, 1]")


def pick_edits(examples: list[Example], seed: int, max_area: float) -> dict[int, Edit]:
    """One edit per example where possible: CV for counting questions that allow it, else IV."""
    rng = random.Random(seed)
    by_source: dict[int, dict[str, list[Edit]]] = {}
    for kind in ("iv", "cv"):
        for edit in edits_of(examples, kind, max_area):
            by_source.setdefault(edit.source, {}).setdefault(kind, []).append(edit)
    return {i: rng.choice(kinds.get("cv") or kinds["iv"]) for i, kinds in by_source.items()}


def training_tensors(examples: list[Example], seed: int, max_area: float) -> TensorDataset:
    original = tensors([e.scene for e in examples], [e.question for e in examples], [e.answer for e in examples])
    chosen = pick_edits(examples, seed, max_area)
    scenes = [chosen[i].scene if i in chosen else e.scene for i, e in enumerate(examples)]
    answers = [chosen[i].answer if i in chosen else e.answer for i, e in enumerate(examples)]
    edited = tensors(scenes, [e.question for e in examples], answers)
    kinds = torch.tensor([{"iv": IV, "cv": CV}[chosen[i].kind] if i in chosen else NO_EDIT
                          for i in range(len(examples))])
    grids = torch.stack([object_grid(e.scene) for e in examples])  # (n, H/4, W/4)
    edited_grids = torch.stack([object_grid(s) for s in scenes])
    return TensorDataset(original.images, original.questions, original.answers, edited.images, edited.answers, kinds,
                         grids, edited_grids)


def blank(images: Tensor) -> Tensor:
    """The question-only baseline's input: one blank image (1, 3, H, W), shared by every question of the batch."""
    return torch.zeros_like(images[:1])


class CausalVQAMethod:
    """Method protocol for the engine: cross-entropy on the originals (+ edits, + consistency when asked).
    The test scenes are drawn like the training scenes, cue correlation included, as a VQA test split shares its
    training split's biases; how much a model answers by the cue is measured on counterfactual pairs
    (`cue_reliance`), which that correlation does not affect. `examples` (train, test) replaces the generated
    scenes (tests use hand-made ones); `init` (a state dict) starts training from those weights: fine-tuning."""

    def __init__(self, cfg: CausalVQAConfig, examples: tuple[list[Example], list[Example]] | None = None,
                 init: dict[str, Tensor] | None = None):
        self.cfg = cfg
        self.init = init  # weights to start from (fine-tuning a trained model), else a fresh initialisation
        bias = None if cfg.cue_bias < 0 else cfg.cue_bias
        self.train_examples, self.test_examples = examples or (
            make_examples(cfg.train_examples, cfg.data_seed, bias, cfg.image_size),
            make_examples(cfg.test_examples, cfg.data_seed + 10_000, bias, cfg.image_size))
        self._train = training_tensors(self.train_examples, cfg.data_seed, cfg.max_area)
        self._test = tensors([e.scene for e in self.test_examples], [e.question for e in self.test_examples],
                             [e.answer for e in self.test_examples])

    def build_model(self) -> nn.Module:
        model = SAAA(len(WORDS), len(ANSWERS), self.cfg.dim, object_classes=OBJECT_CLASSES if self.cfg.object_loss and
                     not self.cfg.blind else 0, count_features=self.cfg.count_features)
        if self.init is not None:
            model.load_state_dict(self.init)
        return model

    def train_dataset(self):
        return self._train

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        images, questions, answers, edited_images, edited_answers, kinds, grids, edited_grids = batch
        if self.cfg.blind:
            images = blank(images)
        if not self.cfg.augment:
            logits = model(images, questions)
            loss = F.cross_entropy(logits, answers) + self._object_loss(model, images, grids)
            return StepOutput(loss, {"acc": (logits.argmax(1) == answers).float().mean()})
        half = max(1, len(answers) // 2)  # B/2 items, each with its original and its edited image: B images
        images, questions, answers, edited_images, edited_answers, kinds, grids, edited_grids = (
            t[:half] for t in (images, questions, answers, edited_images, edited_answers, kinds, grids, edited_grids))
        both = torch.cat([images, edited_images])  # (B, 3, H, W)
        logits = model(both, torch.cat([questions, questions]))  # (B, answers)
        original, edited = logits.chunk(2)
        has_edit = (kinds != NO_EDIT).float()
        loss = F.cross_entropy(original, answers) + \
            (F.cross_entropy(edited, edited_answers, reduction="none") * has_edit).sum() / has_edit.sum().clamp(min=1)
        loss = loss + self._object_loss(model, both, torch.cat([grids, edited_grids]))
        if self.cfg.consistency > 0:
            iv = (kinds == IV).float()
            loss = loss + self.cfg.consistency * (symmetric_kl(original, edited) * iv).sum() / iv.sum().clamp(min=1)
        return StepOutput(loss, {"acc": (original.argmax(1) == answers).float().mean()})

    def _object_loss(self, model: nn.Module, images: Tensor, grids: Tensor) -> Tensor:
        """The weighted cross-entropy of the per-cell object classes (0 without the auxiliary loss, or blind)."""
        if not self.cfg.object_loss or self.cfg.blind:
            return torch.zeros(())
        return self.cfg.object_loss * F.cross_entropy(model.object_logits(images), grids)  # over (B, h, w) cells

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {"test_acc": float((self.test_predictions(model, device) == self._test.answers).float().mean())}

    def test_answers(self) -> Tensor:
        return self._test.answers  # (n,)

    def test_predictions(self, model: nn.Module, device: torch.device | str = "cpu") -> Tensor:
        """Answer indices (n,) on the test examples (on a blank image for the question-only baseline)."""
        images = blank(self._test.images) if self.cfg.blind else self._test.images
        return predict(model, images, self._test.questions, device)


def predict(model: nn.Module, images: Tensor, questions: Tensor, device: torch.device | str = "cpu",
            batch: int = 500) -> Tensor:
    """Answer indices (n,); one image (1, 3, H, W) is shared by every question."""
    was_training = model.training
    model.eval()
    shared = len(images) == 1
    with torch.no_grad():
        out = torch.cat([model((images if shared else images[i:i + batch]).to(device),
                               questions[i:i + batch].to(device)).argmax(1).cpu()
                         for i in range(0, len(questions), batch)])
    model.train(was_training)
    return out


def edit_pairs(model: nn.Module, examples: list[Example], edits: list[Edit], device: torch.device | str = "cpu"
               ) -> list[Pair]:
    """Predictions on each edit and on its original, as metric pairs (the exact answer as ten agreeing humans)."""
    if not edits:
        return []
    sources = sorted({e.source for e in edits})
    original = tensors([examples[i].scene for i in sources], [examples[i].question for i in sources],
                       [examples[i].answer for i in sources])
    pred_original = dict(zip(sources, predict(model, original.images, original.questions, device).tolist()))
    edited = tensors([e.scene for e in edits], [examples[e.source].question for e in edits], [e.answer for e in edits])
    pred_edited = predict(model, edited.images, edited.questions, device).tolist()
    return [Pair(ANSWERS[pred_original[e.source]], ANSWERS[p], [examples[e.source].answer] * 10, [e.answer] * 10)
            for e, p in zip(edits, pred_edited)]


def cue_reliance(model: nn.Module, examples: list[Example], device: torch.device | str = "cpu") -> dict[str, float]:
    """How much the model answers yes/no questions by the cue, on counterfactual pairs: every yes/no question whose
    scene has the cue, asked of the scene with and without it (nothing else changes). The version whose cue
    presence agrees with the answer (cue and "yes", or no cue and "no") against the one where it disagrees: a model
    that ignores the cue scores exactly 0. (Comparing different scenes would not: a scene with room for the cue
    has fewer objects, hence more "no" answers.)"""
    with_cue = [(e, e.scene.objects.index(o)) for e in examples if e.answer in ("yes", "no")
                for o in e.scene.objects if o.is_cue]
    questions, answers = [e.question for e, _ in with_cue], [e.answer for e, _ in with_cue]
    shown = tensors([e.scene for e, _ in with_cue], questions, answers)
    removed = tensors([e.scene.without(i) for e, i in with_cue], questions, answers)
    correct = torch.cat([predict(model, shown.images, shown.questions, device) == shown.answers,
                         predict(model, removed.images, removed.questions, device) == removed.answers])  # (2n,)
    says_yes = torch.tensor([a == "yes" for a in answers])
    return reliance(correct, torch.cat([says_yes, ~says_yes]))


def reliance(correct: Tensor, agrees: Tensor) -> dict[str, float]:
    """correct, agrees: (n,) bool -> accuracy where the cue agrees, where it disagrees, and their difference."""
    accuracy = lambda mask: float(correct[mask].float().mean()) if mask.any() else float("nan")  # noqa: E731
    return {"acc_cue_agrees": accuracy(agrees), "acc_cue_disagrees": accuracy(~agrees),
            "cue_reliance": accuracy(agrees) - accuracy(~agrees), "cue_pairs": len(correct) // 2}


def edit_metrics(model: nn.Module, examples: list[Example], kind: str, max_area: float = 0.1,
                 device: torch.device | str = "cpu") -> tuple[dict, list[Edit], list[Pair]]:
    """The flip metrics (`flip_metrics`) of `model` on every `kind` ("iv" or "cv") edit of `examples` that the
    paper's rules allow (objects covering <= `max_area`), with the edits and the scored pairs."""
    edits = edits_of(examples, kind, max_area)
    pairs = edit_pairs(model, examples, edits, device)
    return flip_metrics(kind, pairs), edits, pairs
