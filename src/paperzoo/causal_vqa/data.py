"""Data sets of (scene, question, answer) with exact IV/CV edits, and their tensors.

A "biased" data set correlates the cue object (the white cross, never mentioned by a question) with the answer of
yes/no questions: with `cue_bias` = 0.9 the cue is present in 90% of the "yes" scenes and 10% of the "no" scenes,
a spurious context like the co-occurrences of COCO that the paper (Agarwal et al., CVPR 2020, Sec. 1) blames for
flips. With `cue_bias` = None the cue is present half the time, independently of the answer. Every scene has room
for the cue, with or without it, so its presence says nothing else about the scene (dropping only the draws
where a planted cue did not fit made the cue rarer than configured and a sign of sparse scenes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from paperzoo.causal_vqa.questions import ANSWERS, KINDS, Question, cv_candidates, iv_candidates, random_question
from paperzoo.causal_vqa.scenes import COLORS, SHAPES, Scene, add_cue, random_scene, render
from paperzoo.errors import UserError

WORDS = sorted({*"how many are there is a what color shape the object objects than more".split(), *COLORS,
                *SHAPES, *(s + "s" for s in SHAPES)})
MAX_WORDS = 8


@dataclass(frozen=True)
class Example:
    """A scene, a question about it and the answer (one of `ANSWERS`) read from its scene graph."""

    scene: Scene
    question: Question
    answer: str


@dataclass(frozen=True)
class Edit:
    """An edited example: which example, which object was removed, the edited scene and its answer."""

    source: int
    kind: str  # "iv" or "cv"
    removed: int
    scene: Scene
    answer: str
    removed_cue: bool  # the removed object was the cue


def make_examples(n: int, seed: int, cue_bias: float | None = None, image_size: int = 32) -> list[Example]:
    """n examples, deterministic from `seed`; the cue correlates with yes/no answers per `cue_bias`."""
    if cue_bias is not None and not 0 <= cue_bias <= 1:
        raise UserError(f"cue_bias must be in [0, 1] or None, got {cue_bias}")
    rng = random.Random(seed)
    examples = []
    while len(examples) < n:
        scene = random_scene(rng, image_size=image_size)
        question = random_question(rng, scene)
        if question is None:
            continue
        with_cue = add_cue(rng, scene)
        if with_cue is scene:  # no room for the cue: only scenes that can hold it, else it would mark sparse scenes
            continue
        answer = question.answer(scene)
        examples.append(Example(with_cue if rng.random() < cue_probability(answer, cue_bias) else scene, question,
                                answer))
    return examples


def cue_probability(answer: str, cue_bias: float | None) -> float:
    """P(cue | answer): `cue_bias` for "yes", 1 - `cue_bias` for "no", one half otherwise (or without a bias)."""
    if cue_bias is None or answer not in ("yes", "no"):
        return 0.5
    return cue_bias if answer == "yes" else 1 - cue_bias


def edits_of(examples: list[Example], kind: str, max_area: float = 0.1) -> list[Edit]:
    """Every allowed edit of every example: IV removes one unmentioned object, CV one counted object."""
    if kind not in ("iv", "cv"):
        raise UserError(f"kind must be 'iv' or 'cv', got {kind!r}")
    out = []
    for i, ex in enumerate(examples):
        candidates = (iv_candidates if kind == "iv" else cv_candidates)(ex.scene, ex.question, max_area)
        for j in candidates:
            edited = ex.scene.without(j)
            out.append(Edit(i, kind, j, edited, ex.question.answer(edited), ex.scene.objects[j].is_cue))
    return out


GRID_CELL = 4  # pixels per cell of the model's image grid (two 2x2 poolings)
OBJECT_CLASSES = 2 + len(SHAPES) * len(COLORS)  # none, the cue, every shape and colour


def object_grid(scene: Scene) -> Tensor:
    """Which object has its centre in each cell of the model's image grid: (H/4, W/4) class ids, 0 = none, 1 = the
    cue, 2 + shape * colours + colour otherwise. Boxes keep a 1-pixel gap, so centres lie >= 8 pixels apart (in x or y) and
    never share a 4-pixel cell."""
    side = scene.image_size // GRID_CELL
    grid = torch.zeros(side, side, dtype=torch.long)
    for obj in scene.objects:
        label = 1 if obj.is_cue else 2 + SHAPES.index(obj.shape) * len(COLORS) + list(COLORS).index(obj.color)
        grid[obj.y // GRID_CELL, obj.x // GRID_CELL] = label
    return grid


def encode_question(question: Question) -> Tensor:
    index = {w: i + 1 for i, w in enumerate(WORDS)}  # 0 = padding
    tokens = [index[w] for w in question.text.split()]
    return torch.tensor(tokens + [0] * (MAX_WORDS - len(tokens)))  # (MAX_WORDS,)


def answer_index(answer: str) -> int:
    return ANSWERS.index(answer)


@dataclass
class Batch:
    images: Tensor  # (n, 3, H, W)
    questions: Tensor  # (n, MAX_WORDS)
    answers: Tensor  # (n,)


def tensors(scenes: list[Scene], questions: list[Question], answers: list[str]) -> Batch:
    return Batch(torch.stack([render(s) for s in scenes]), torch.stack([encode_question(q) for q in questions]),
                 torch.tensor([answer_index(a) for a in answers]))


def kind_counts(examples: list[Example]) -> dict[str, int]:
    return {k: sum(ex.question.kind == k for ex in examples) for k in KINDS}
