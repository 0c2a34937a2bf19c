"""Questions about scenes, answered from the scene graph, and the paper's two edits (Agarwal et al., CVPR 2020,
arXiv 1912.07538, Sec. 3).

* IV-VQA (invariant): remove one object the question does not mention; the answer must not change.
* CV-VQA (covariant): for a counting question, remove one instance of the counted object; the answer drops by one.

As in the paper, an object may be removed only if it covers at most `max_area` of the image (10%) and its box does
not overlap the box of any object the question mentions. An object is "mentioned" when it has a colour or shape
the question names (the paper: its COCO category appears in the question), so removing an unmentioned one leaves
every answer unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paperzoo.causal_vqa.scenes import COLORS, SHAPES, Obj, Scene, area_fraction, bbox, boxes_overlap
from paperzoo.errors import UserError

KINDS = ("count", "exists", "query_color", "query_shape", "compare")
ANSWERS = ("no", "yes", *[str(i) for i in range(7)], *COLORS, *SHAPES)
"""The answer vocabulary, in the order of the model's output classes: no, yes, counts 0-6, colours, shapes."""


@dataclass(frozen=True)
class Question:
    """A question about a scene: its `kind` (count, exists, query_color, query_shape, compare) and the colour and
    shapes it names (None: any); `text` is its wording, answered from the scene graph by `answer(scene)`."""

    kind: str
    color: str | None = None
    shape: str | None = None
    other_shape: str | None = None  # compare: "are there more <shape>s than <other_shape>s?"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"unknown question kind {self.kind!r}; kinds: {KINDS}")

    @property
    def text(self) -> str:
        noun = f"{self.shape}s" if self.shape else "objects"
        described = f"{self.color} {noun}" if self.color else noun
        if self.kind == "count":
            return f"how many {described} are there"
        if self.kind == "exists":
            return f"is there a {self.color or ''} {self.shape or 'object'}".replace("  ", " ")
        if self.kind == "query_color":
            return f"what color is the {self.shape}"
        if self.kind == "query_shape":
            return f"what shape is the {self.color} object"
        return f"are there more {self.shape}s than {self.other_shape}s"

    def matches(self, obj: Obj) -> bool:
        """The object fits the question's description (it is what the question asks about)."""
        if obj.is_cue:
            return False
        if self.kind == "compare":
            return obj.shape in (self.shape, self.other_shape)
        return (self.color is None or obj.color == self.color) and (self.shape is None or obj.shape == self.shape)

    def mentions(self, obj: Obj) -> bool:
        """The object has a colour or shape named in the question (the paper's 'question objects')."""
        named = {self.color, self.shape, self.other_shape} - {None}
        return not obj.is_cue and (obj.color in named or obj.shape in named)

    def answer(self, scene: Scene) -> str | None:
        """The answer from the scene graph; None when the question does not apply (query without a unique
        object)."""
        hits = [o for o in scene.objects if self.matches(o)]
        if self.kind == "count":
            return str(len(hits))
        if self.kind == "exists":
            return "yes" if hits else "no"
        if self.kind == "compare":
            more = sum(o.shape == self.shape for o in hits) > sum(o.shape == self.other_shape for o in hits)
            return "yes" if more else "no"
        if len(hits) != 1:
            return None
        return hits[0].color if self.kind == "query_color" else hits[0].shape


def random_question(rng: random.Random, scene: Scene) -> Question | None:
    """A question of a random kind about the scene (about one of its objects for the query kinds)."""
    kind = rng.choice(KINDS)
    colored = [o for o in scene.objects if not o.is_cue]
    if kind == "count":
        use_color, use_shape = rng.choice([(True, False), (False, True), (True, True)])
        return Question("count", rng.choice(list(COLORS)) if use_color else None,
                        rng.choice(SHAPES) if use_shape else None)
    if kind == "exists":
        return Question("exists", rng.choice(list(COLORS)), rng.choice(SHAPES))
    if kind == "compare":
        first, second = rng.sample(SHAPES, 2)
        return Question("compare", shape=first, other_shape=second)
    if not colored:
        return None
    target = rng.choice(colored)
    question = Question("query_color", shape=target.shape) if kind == "query_color" else \
        Question("query_shape", color=target.color)
    return question if question.answer(scene) is not None else None


def removable(scene: Scene, question: Question, index: int, max_area: float = 0.1) -> bool:
    """The paper's rule: small enough, and its box overlaps no box of a question object (other than itself)."""
    obj = scene.objects[index]
    if area_fraction(obj, scene.image_size) > max_area:
        return False
    box = bbox(obj, scene.image_size)
    return not any(boxes_overlap(box, bbox(o, scene.image_size)) for i, o in enumerate(scene.objects)
                   if i != index and question.mentions(o))


def iv_candidates(scene: Scene, question: Question, max_area: float = 0.1) -> list[int]:
    """Indices of objects an IV edit may remove: not mentioned by the question, and removable."""
    return [i for i, o in enumerate(scene.objects)
            if not question.mentions(o) and removable(scene, question, i, max_area)]


def cv_candidates(scene: Scene, question: Question, max_area: float = 0.1) -> list[int]:
    """Indices of counted objects a CV edit may remove (count questions with an answer >= 1)."""
    if question.kind != "count":
        return []
    return [i for i, o in enumerate(scene.objects) if question.matches(o) and removable(scene, question, i, max_area)]
