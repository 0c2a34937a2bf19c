"""Towards Causal VQA (Agarwal, Shetty, Fritz, CVPR 2020, arXiv 1912.07538): IV/CV flip metrics with the official
counting rules, scenes with exact object removal, a SAAA-style VQA model, and robustification by edited images."""

from paperzoo.causal_vqa.data import Edit, Example, edits_of, make_examples, object_grid
from paperzoo.causal_vqa.files import match_pairs, read_results
from paperzoo.causal_vqa.metrics import Pair, flip_metrics, vqa_accuracy
from paperzoo.causal_vqa.model import SAAA, readout, symmetric_kl
from paperzoo.causal_vqa.questions import ANSWERS, Question, cv_candidates, iv_candidates, random_question
from paperzoo.causal_vqa.scenes import Obj, Scene, add_cue, random_scene, render
from paperzoo.causal_vqa.train import CausalVQAConfig, CausalVQAMethod, edit_metrics

__all__ = [
    "ANSWERS",
    "SAAA",
    "CausalVQAConfig",
    "CausalVQAMethod",
    "Edit",
    "Example",
    "Obj",
    "Pair",
    "Question",
    "Scene",
    "add_cue",
    "cv_candidates",
    "edit_metrics",
    "edits_of",
    "flip_metrics",
    "iv_candidates",
    "make_examples",
    "match_pairs",
    "object_grid",
    "random_question",
    "random_scene",
    "read_results",
    "readout",
    "render",
    "symmetric_kl",
    "vqa_accuracy",
]
