"""Every `key=value` example in a train method's description (printed by `paperzoo list`) is a valid override."""

import re

import pytest

from paperzoo.catalog import load_catalog
from paperzoo.config import apply_overrides

SPECS = {name: spec for entry in load_catalog() for name, spec in entry.train_methods.items()}
EXAMPLE = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)=([^\s,;)]+)")  # key=value, ends at a space , ; or )


def examples(description: str) -> list[str]:
    # a placeholder value (root=...) stands for a path: any text does for the check
    return [f"{key}={'/data/placeholder' if value == '...' else value}"
            for key, value in EXAMPLE.findall(description)]


def test_examples_are_found():
    assert examples("x (train.lr=0.1, data=folder root=...)") == ["train.lr=0.1", "data=folder",
                                                                 "root=/data/placeholder"]
    assert sum(bool(examples(spec.description)) for spec in SPECS.values()) >= 4


@pytest.mark.parametrize("name", sorted(name for name, spec in SPECS.items() if examples(spec.description)))
def test_description_examples_are_valid_overrides(name):
    spec = SPECS[name]
    apply_overrides(spec.config(), examples(spec.description))  # a ConfigError names a bad key or value
