"""The notebooks follow the project's rules, so that papermill and nbval check what they claim to check.

- the first code cell is tagged ``parameters`` and sets ``profile = "quick"`` (papermill injects after it);
- notebooks import, never define: no ``def``, ``class`` or ``lambda`` in code cells;
- outputs are not committed, except in cells marked ``# NBVAL_CHECK_OUTPUT``: nbval compares those with the
  stored output, and a cell with no stored output or no execution count is silently not compared, so each
  such cell must carry the output it is expected to print.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_study_has_its_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_data_inspection", "02_training", "03_evaluation", "04_quantization", "05_onnx_export"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; reading the file with nbformat would add missing ones silently (a warning,
    # and a hard error in future versions), so the raw JSON is checked.
    raw = json.loads(path.read_text())
    ids = [cell.get("id") for cell in raw["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{path.name}: cells {missing} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate cell ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_comes_first_with_quick_profile(path):
    first = code_cells(path)[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell is not tagged 'parameters'"
    assert 'profile = "quick"' in first.source, f"{path.name}: the parameters cell does not default to quick"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_and_never_define(path):
    for index, cell in enumerate(code_cells(path)):
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        tree = ast.parse(source, filename=f"{path.name} cell {index}")
        defined = [type(node).__name__ for node in ast.walk(tree)
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"{path.name} code cell {index} defines {defined}; move it into eventflow"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_checked_cells_carry_outputs(path):
    for index, cell in enumerate(code_cells(path)):
        if cell.source.lstrip().startswith(CHECK):
            assert cell.outputs and cell.execution_count is not None, (
                f"{path.name} code cell {index} is marked {CHECK} but stores no output to compare with")
        else:
            assert not cell.outputs, f"{path.name} code cell {index} has committed outputs; clear them"
