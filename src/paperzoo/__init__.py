"""paperzoo: a deep-learning reading list turned into tested modules, reproducible claims and reports.

Every paper's models by name: `list_models()`, `create_model(name, **kwargs)`, `model_info(name)` (what a model
takes and returns) and `transforms_for(name)` (the preprocessing of a raw image, clip or text), from
`paperzoo.models` (imported on first use, so that `import paperzoo.errors` stays light).
"""

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "model_info", "transforms_for"]


def __getattr__(name: str):
    if name in __all__:
        from paperzoo import models

        return getattr(models, name)
    raise AttributeError(f"module 'paperzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
