"""The docstring examples of the main concepts run, as a newcomer would paste them."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "metarl.envs.base",  # TaskFamily
    "metarl.sampling.sampler",  # Sampler
    "metarl.sampling.episodes",  # Episodes
    "metarl.envs.tensor_env",  # the tensor env contract, with a worked plug-in
    "metarl.sampling.tensor",  # the device rollout loop
    "metarl.contract",  # the agent contract
    "metarl.fileio",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
