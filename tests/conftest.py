"""Shared test setup: small thread count (the CI machine has 2 cores) and a private cache folder per session."""

import os

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    if "PAPERZOO_CACHE" not in os.environ:
        os.environ["PAPERZOO_CACHE"] = str(tmp_path_factory.mktemp("paperzoo-cache"))
    yield
