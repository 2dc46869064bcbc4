"""Every docstring example in the package runs (style rule 7)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import eventflow

# Modules that need an optional compiled extension or a display are still imported; none is skipped here.
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(eventflow.__path__, prefix="eventflow.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
