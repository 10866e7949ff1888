"""examples/planted.ipynb runs top to bottom in a Jupyter kernel (nbclient) and shows the interactive view."""

import os

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra (pip install -e '.[test]')")
nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_planted_notebook_runs():
  path = os.path.join(ROOT, "examples", "planted.ipynb")
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.path.join(ROOT, "examples")}}
  )
  client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
  html = [
    o["data"]["text/html"]
    for c in nb.cells
    if c.cell_type == "code"
    for o in c.get("outputs", [])
    if "data" in o and "text/html" in o["data"]
  ]
  assert len(html) == 1
  view = html[0]
  assert view.startswith('<div class="rjx" id="rjx-') and "rjx-data" in view and "data:image/png;base64," in view
  assert "<script src" not in view
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
  assert "planted fields recovered: [1, 2, 3]" in text


def test_notebook_uses_public_names_only():
  """The example notebook imports only ``regionjax as rj`` and calls only names of ``rj.__all__``."""
  import re

  import regionjax as rj

  nb = nbformat.read(os.path.join(ROOT, "examples", "planted.ipynb"), as_version=4)
  code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
  assert "from regionjax" not in code and "import regionjax." not in code and "configs" not in code
  used = set(re.findall(r"\brj\.([A-Za-z_]\w*)", code))
  assert used and used <= set(rj.__all__), sorted(used - set(rj.__all__))
