"""Every shipped notebook runs to the end against a generated province, drawing its figures."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

# What each notebook prints when it has read the data (a phrase a reader would look for).
PRINTS = {
    "carbon": "t of carbon in all",
    "inventory_overview": "of the 1,130,000 target",
    "ioc_indicators": "documents,",
    "plantations_and_seedlings": "seedling lots from",
    "timber_custody_audit": "logs (",
}


def test_the_five_notebooks_are_there():
    assert {p.stem for p in NOTEBOOKS} == set(PRINTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_as_shipped(path, province_env):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute(
        cwd=str(path.parent)
    )
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert PRINTS[path.stem] in printed
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "a map and a chart"
