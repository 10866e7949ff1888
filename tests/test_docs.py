"""The repository is self-contained: no pointers outside it, and the docs' links resolve.

* No ``.py``/``.md``/``.j2`` file refers to the old out-of-tree design notes
  or to a sibling ``shared`` directory (a clone has neither); the maths and
  conventions live in ``docs/``.
* Every relative link in ``docs/*.md`` and ``README.md`` names an existing
  file, and its ``#anchor`` (if any) a heading of the linked page.
* Every ``docs/<page>.md §<Section>`` pointer in code, comments and text
  names an existing page and one of its headings.
"""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"__pycache__", "build", "dist", "runs", "node_modules", "venv"}
EXTENSIONS = (".py", ".md", ".j2")
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = ("DES" + "IGN §", "DES" + "IGN.md", ".." + "/shared", "/work" + "/shared")

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_POINTER = re.compile(r"docs/([\w./-]+\.md) §([A-Za-z][A-Za-z0-9 '-]*)")


def repo_files(root: str = ROOT, extensions=EXTENSIONS) -> list[str]:
  """Paths (relative to ``root``) of the files to check, hidden directories excluded."""
  out = []
  for directory, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info"))
    for name in sorted(files):
      if name.endswith(extensions):
        out.append(os.path.relpath(os.path.join(directory, name), root))
  return out


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as fh:
    return fh.read()


def forbidden_mentions(root: str = ROOT) -> list[str]:
  """``path:line: text`` for every line that mentions a forbidden pointer."""
  hits = []
  for rel in repo_files(root):
    for number, line in enumerate(_read(os.path.join(root, rel)).splitlines(), 1):
      if any(f in line for f in FORBIDDEN):
        hits.append(f"{rel}:{number}: {line.strip()}")
  return hits


def slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def headings(path: str) -> list[str]:
  """The heading texts of a markdown file (outside fenced code)."""
  text = _FENCE.sub("", _read(path))
  return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.+?)\s*#*\s*$", text, re.M)]


def broken_links(md_path: str) -> list[str]:
  """Relative links of one markdown file whose file or anchor does not exist."""
  text = _INLINE_CODE.sub("", _FENCE.sub("", _read(md_path)))
  base = os.path.dirname(md_path)
  bad = []
  for m in _LINK.finditer(text):
    target = m.group(1)
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, …
      continue
    path, _, anchor = target.partition("#")
    full = os.path.normpath(os.path.join(base, path)) if path else md_path
    if not os.path.exists(full):
      bad.append(f"{target} (no file {os.path.relpath(full, ROOT)})")
    elif anchor and full.endswith(".md") and anchor not in {slug(h) for h in headings(full)}:
      bad.append(f"{target} (no heading #{anchor} in {os.path.relpath(full, ROOT)})")
  return bad


def broken_pointers(root: str = ROOT) -> list[str]:
  """``docs/<page>.md §<Section>`` pointers whose page or heading does not exist."""
  bad = []
  for rel in repo_files(root):
    for number, line in enumerate(_read(os.path.join(root, rel)).splitlines(), 1):
      for m in _POINTER.finditer(line):
        page = os.path.join(root, "docs", m.group(1))
        if not os.path.exists(page):
          bad.append(f"{rel}:{number}: no page docs/{m.group(1)}")
          continue
        ref = m.group(2).strip()
        if not any(ref == h or ref.startswith(h + " ") for h in headings(page)):
          bad.append(f"{rel}:{number}: no heading {ref!r} in docs/{m.group(1)}")
  return bad


def doc_pages() -> list[str]:
  docs = os.path.join(ROOT, "docs")
  return [os.path.join(ROOT, "README.md")] + sorted(
    os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md")
  )


def test_the_scan_covers_the_repository():
  files = set(repo_files())
  for expected in (
    "README.md",
    os.path.join("regionjax", "solver.py"),
    os.path.join("docs", "method.md"),
    os.path.join("regionjax", "templates", "report.html.j2"),
    os.path.join("tests", "test_docs.py"),
  ):
    assert expected in files, expected


def test_no_pointers_outside_the_repository():
  hits = forbidden_mentions()
  assert not hits, "point into docs/ instead:\n" + "\n".join(hits)


def test_docs_pages_exist():
  names = {os.path.basename(p) for p in doc_pages()}
  assert {"README.md", "method.md", "layout.md", "adding_a_generator.md"} <= names


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(page):
  bad = broken_links(page)
  assert not bad, f"{os.path.relpath(page, ROOT)}: broken links:\n" + "\n".join(bad)


def test_docs_pointers_name_existing_sections():
  bad = broken_pointers()
  assert not bad, "\n".join(bad)


def test_checks_catch_what_they_should(tmp_path):
  """The helpers above do find a forbidden pointer, a broken link and a broken section pointer."""
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "page.md").write_text(
    "# Page\n\n## Some section\n\n[ok](page.md#some-section) "
    "[gone](missing.md) [bad anchor](page.md#nowhere) "
    "[web](https://example.org/x.md)\n\n```\n[in code](nope.md)\n```\n"
  )
  sec = "§"  # kept out of the literals so that this file holds no pointers itself
  (tmp_path / "mod.py").write_text(
    f'"""See {FORBIDDEN[0]}2 and docs/page.md {sec}Some section."""\n'
    f'# docs/page.md {sec}Other section\n# docs/none.md {sec}Page\n'
  )
  assert [h.split(":")[0] for h in forbidden_mentions(str(tmp_path))] == ["mod.py"]
  assert broken_links(str(tmp_path / "docs" / "page.md")) == [
    "missing.md (no file " + os.path.relpath(str(tmp_path / "docs" / "missing.md"), ROOT) + ")",
    "page.md#nowhere (no heading #nowhere in " + os.path.relpath(str(tmp_path / "docs" / "page.md"), ROOT) + ")",
  ]
  bad = broken_pointers(str(tmp_path))
  assert len(bad) == 2 and "'Other section'" in bad[0] and "docs/none.md" in bad[1]
  assert slug("Controllable and sequential reconstruction") == "controllable-and-sequential-reconstruction"
  assert slug("The method, its maths and the conventions") == "the-method-its-maths-and-the-conventions"


# ------------------------------------------------------------- docs/api.md
_PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def test_api_page_documents_every_public_name():
  """Every name of ``regionjax.__all__`` has a heading of docs/api.md that names it as ``rj.<name>``."""
  import regionjax as rj

  headings = "\n".join(l for l in _read(os.path.join(ROOT, "docs", "api.md")).splitlines() if l.startswith("#"))
  missing = [n for n in rj.__all__ if f"`rj.{n}`" not in headings]
  assert not missing, f"public names without a section in docs/api.md: {missing}"


def test_api_page_examples_run():
  """The examples of docs/api.md run top to bottom in one namespace (what a reader pastes into a notebook)."""
  blocks = _PY_BLOCK.findall(_read(os.path.join(ROOT, "docs", "api.md")))
  assert len(blocks) >= 20
  namespace: dict = {}
  for k, code in enumerate(blocks):
    try:
      exec(compile(code, f"docs/api.md block {k}", "exec"), namespace)  # noqa: S102 - the docs' own examples
    except Exception as e:  # noqa: BLE001 - name the block that failed
      raise AssertionError(f"docs/api.md example {k} failed: {type(e).__name__}: {e}\n{code}") from e
