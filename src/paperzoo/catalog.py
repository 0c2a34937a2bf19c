"""The reading list: the eleven seed posts, the paperzoo module of each, and what each module provides.

A paper's folder provides `paperzoo/<module>/experiments.py` with any of:
  CLAIMS: list[Claim]                      its claims, run by `paperzoo reproduce`
  TRAIN_METHODS: dict[str, TrainSpec]      methods for `paperzoo train NAME`
  CLI_VERBS: dict[str, CliVerb]            method-specific verbs, e.g. `paperzoo vqa-flips`
A post whose experiments module does not exist yet is listed as "not yet implemented".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class Post:
    number: int
    module: str
    title: str
    paper: str  # the paper behind the post, with its arXiv id where it has one


POSTS: list[Post] = [
    Post(1, "multigpu", "Multi-GPU training: DP vs DDP, torchrun", "PyTorch DDP (Li et al. 2020, arXiv 2006.15704)"),
    Post(2, "registers", "Vision Transformers Need Registers", "Darcet et al., ICLR 2024, arXiv 2309.16588"),
    Post(3, "dpo", "RLHF and Direct Preference Optimization", "Rafailov et al., NeurIPS 2023, arXiv 2305.18290"),
    Post(4, "capsnet", "Dynamic Routing Between Capsules", "Sabour, Frosst, Hinton, NeurIPS 2017, arXiv 1710.09829"),
    Post(5, "squeezetime", "SqueezeTime: mobile video understanding", "Zhai et al. 2024, arXiv 2405.08344"),
    Post(6, "causal", "Toward Causal Representation Learning", "Schölkopf et al. 2021, arXiv 2102.11107"),
    Post(7, "batchnorm", "Batch Normalization and mini-batch SGD", "Ioffe & Szegedy 2015, arXiv 1502.03167"),
    Post(8, "metalearning", "Meta-learning: few-shot, ProtoNets, MAML", "Finn et al. 2017 arXiv 1703.03400; Snell et al. 2017 arXiv 1703.05175"),
    Post(9, "gblend", "What Makes Training Multi-Modal Networks Hard?", "Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681"),
    Post(10, "causal_vqa", "Towards Causal VQA", "Agarwal, Shetty, Fritz, CVPR 2020, arXiv 1912.07538"),
    Post(11, "multiview_ssl", "Self-supervised Learning from a Multi-view Perspective", "Tsai et al., ICLR 2021, arXiv 2006.05576"),
]

# The engine's own sanity claim: not a post, but run and reported like one.
ENGINE = Post(0, "sanity", "The training engine (sanity)", "paperzoo's own check")


@dataclass
class Entry:
    post: Post
    module: ModuleType | None = None
    import_error: str | None = None
    claims: list = field(default_factory=list)
    train_methods: dict = field(default_factory=dict)
    cli_verbs: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.import_error:
            return f"import error: {self.import_error}"
        if self.module is None:
            return "not yet implemented"
        return "implemented"


def load_entry(post: Post) -> Entry:
    name = f"paperzoo.{post.module}.experiments"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name in (name, f"paperzoo.{post.module}"):
            return Entry(post)
        return Entry(post, import_error=f"{type(e).__name__}: {e}")
    except Exception as e:  # a broken paper must not hide the others from `list` and `reproduce`
        return Entry(post, import_error=f"{type(e).__name__}: {e}")
    return Entry(
        post,
        module=module,
        claims=list(getattr(module, "CLAIMS", [])),
        train_methods=dict(getattr(module, "TRAIN_METHODS", {})),
        cli_verbs=dict(getattr(module, "CLI_VERBS", {})),
    )


def load_catalog() -> list[Entry]:
    """The engine entry, then the eleven posts in blog order."""
    return [load_entry(post) for post in [ENGINE, *POSTS]]


@dataclass(frozen=True)
class TrainSpec:
    """A method `paperzoo train NAME` can run: its config dataclass (with a `train: TrainConfig` field) and a
    builder from that config to a `Method` for the engine."""

    name: str
    description: str
    config: type
    build: object  # Callable[[config], paperzoo.engine.Method]


@dataclass(frozen=True)
class CliVerb:
    """A method-specific CLI verb: `add_arguments(parser)` declares its flags, `run(args) -> int` runs it."""

    name: str
    help: str
    add_arguments: object  # Callable[[argparse.ArgumentParser], None]
    run: object  # Callable[[argparse.Namespace], int]
