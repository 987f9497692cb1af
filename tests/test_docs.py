"""The documentation: every public name has a docstring and a reference entry, the site builds with
``mkdocs build --strict``, and the code of the tutorial and the how-to guides runs and prints
what the pages say it prints.

A page's code (the tutorial, the how-to guides, the other pages of docs/ and the README) is
every fenced ``python`` block, and on pages that say ``<!-- docs-test: run bash -->`` every
``bash`` block too, run in order in one fresh interpreter per page, in an empty directory; a
fenced ``output`` block right after a code block is what that block must print (a line ``...``
stands for any lines, ``...`` inside a line for any text). A python block that prints must be
followed by its output, so every number a page shows is checked.

The site build and the reference checks need the ``docs`` extra (``pip install -e ".[docs]"``,
which ``.ci/run`` installs); without it they skip, saying so. The docstring check at runtime and
the page runs need nothing beyond the ``dev`` extra.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# The modules the API reference documents (docs/griffe_runtime.py has the same list; a test
# below keeps the two equal). chainrule.compile joins when it exists.
MODULES = [
    "chainrule", "chainrule.nn", "chainrule.nn.functional", "chainrule.nn.init",
    "chainrule.optim", "chainrule.optim.lr_scheduler", "chainrule.data", "chainrule.train",
    "chainrule.memory", "chainrule.sklearn", "chainrule.reference", "chainrule.reference.lecture",
    "chainrule.distributed", "chainrule.onnx", "chainrule.interop", "chainrule.ops",
]
if importlib.util.find_spec("chainrule.compile") is not None:
    MODULES.append("chainrule.compile")

NEEDS_MKDOCS = "the docs extra is not installed (pip install -e '.[docs]'; .ci/run installs it)"


# --------------------------------------------------------------------------- public names
def _defined_names(mod) -> list[str]:
    """Names a module without ``__all__`` defines itself (def, class, assignment), not imports."""
    tree = ast.parse(Path(inspect.getfile(mod)).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def public_names(module: str) -> list[str]:
    mod = importlib.import_module(module)
    return list(getattr(mod, "__all__", None) or _defined_names(mod))


def _routines(cls) -> list[tuple[str, object]]:
    """A class's own public methods and properties (not another name for one of them)."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if isinstance(value, property) or inspect.isfunction(fn):
            if isinstance(value, property) or fn.__name__ == name:
                out.append((name, fn))
    return out


def test_every_public_name_has_a_docstring_at_runtime():
    """What ``help()`` shows: modules, classes, functions, and the public methods and properties
    of public classes. (Constants carry their docstrings in the source: see the griffe test.)"""
    missing = []
    for module in MODULES:
        mod = importlib.import_module(module)
        for name in public_names(module):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or inspect.isroutine(obj):
                doc = obj.__doc__
            elif inspect.isclass(obj):
                doc = obj.__dict__.get("__doc__")
                missing += [f"{module}.{name}.{m}" for m, fn in _routines(obj)
                            if not (fn.__doc__ or "").strip()]
            else:
                continue
            if not (doc or "").strip():
                missing.append(f"{module}.{name}")
    assert not missing, "public names without a docstring:\n" + "\n".join(sorted(set(missing)))


def test_the_runtime_check_would_catch_a_missing_docstring(monkeypatch):
    import chainrule.nn as nn

    def spec(self):  # a public method without a docstring
        return {}

    monkeypatch.setattr(nn.MLP, "spec", spec)
    with pytest.raises(AssertionError, match="chainrule.nn.MLP.spec"):
        test_every_public_name_has_a_docstring_at_runtime()


# --------------------------------------------------------------------------- griffe's view
@pytest.fixture(scope="module")
def griffe_runtime():
    pytest.importorskip("griffe", reason=NEEDS_MKDOCS)
    sys.path.insert(0, str(DOCS))
    try:
        import griffe_runtime
    finally:
        sys.path.remove(str(DOCS))
    return griffe_runtime


def _load(griffe_runtime):
    import griffe

    ext = griffe.load_extensions(griffe_runtime.RuntimeMembers(check=False))
    return griffe.load("chainrule", search_paths=[str(ROOT / "src")], extensions=ext,
                       docstring_parser="google")


def test_reference_modules_are_the_same_list(griffe_runtime):
    assert griffe_runtime.REFERENCE_MODULES == MODULES


def test_every_public_name_has_a_docstring_in_the_reference(griffe_runtime):
    """The reference's view (static analysis plus the extension): constants included."""
    assert griffe_runtime.undocumented(_load(griffe_runtime)) == []


def test_the_reference_check_would_catch_a_missing_docstring(griffe_runtime):
    pkg = _load(griffe_runtime)
    pkg["nn.container.MLP"].docstring = None
    pkg["dtypes.float32"].docstring = None
    missing = griffe_runtime.undocumented(pkg)
    assert "chainrule.nn.MLP" in missing and "chainrule.float32" in missing


def test_rest_markup_becomes_markdown(griffe_runtime):
    md = griffe_runtime.markdown(textwrap.dedent("""\
        See :func:`~chainrule.exp` and :math:`\\eta`.

        .. math::
            a &= b \\\\
            c &= d

        Example::

            >>> 1
        """))
    assert "`chainrule.exp`" in md and "`\\eta`" in md and ":func:" not in md
    assert "```latex\na &= b \\\\\nc &= d\n```" in md
    assert "Example:\n" in md and "Example::" not in md


# --------------------------------------------------------------------------- the site
def _anchor_objects(ids: set[str]) -> set[int]:
    objs = set()
    for anchor in ids:
        parts = anchor.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for p in parts[i:]:
                obj = getattr(obj, p, None)
            if obj is not None:
                objs.add(id(obj))
            break
    return objs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason=NEEDS_MKDOCS)
    pytest.importorskip("mkdocstrings", reason=NEEDS_MKDOCS)
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out


def test_site_builds_strict_and_offline(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 30
    for page in pages:  # nothing fetched from elsewhere when a page is read (fonts, scripts)
        html = page.read_text()
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
        for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html):
            pytest.fail(f"{page.relative_to(site)} loads {src}")


def test_every_public_name_has_a_reference_entry(site):
    """An anchor ``module.name`` on a reference page, or an anchor of the same object under
    another public path (``chainrule.ops.exp`` is ``chainrule.exp``)."""
    ids: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        ids |= set(re.findall(r'id="(chainrule[\w.]*)"', page.read_text()))
    documented = _anchor_objects(ids)
    missing = []
    for module in MODULES:
        mod = importlib.import_module(module)
        if module not in ids and id(mod) not in documented and module != "chainrule":
            missing.append(module)
        for name in public_names(module):
            obj = getattr(mod, name)
            if f"{module}.{name}" not in ids and id(obj) not in documented:
                missing.append(f"{module}.{name}")
            if inspect.isclass(obj):
                for m, _ in _routines(obj):
                    if f"{module}.{name}.{m}" not in ids:
                        missing.append(f"{module}.{name}.{m}")
    assert not missing, ("public names without a reference entry (add them to a page of "
                         "docs/reference/, a new module's page to mkdocs.yml's nav):\n"
                         + "\n".join(missing))


def test_mlp_signature_is_on_the_nn_page(site):
    import chainrule as cr

    text = re.sub(r"<[^>]+>", "", (site / "reference" / "nn" / "index.html").read_text())
    text = re.sub(r"\s+", "", text.replace("&#39;", "'").replace("&quot;", '"'))
    params = []
    for p in inspect.signature(cr.nn.MLP).parameters.values():  # name: annotation = default
        default = "" if p.default is p.empty else "=" + re.escape(repr(p.default))
        params.append(re.escape(p.name) + r":[^,=()]+" + default)
    assert re.search(r"MLP\(" + ",".join(params) + r"\)", text), "nn.MLP's signature"


def _plain_signature(obj) -> str:
    sig = inspect.signature(obj)
    return str(sig.replace(parameters=[p.replace(annotation=p.empty)
                                       for p in sig.parameters.values()],
                           return_annotation=sig.empty))


def test_signatures_at_a_glance_match_the_code():
    """The reference pages' "at a glance" blocks (what a reader on GitHub sees, where the
    mkdocstrings entries are not rendered) list signatures the code has."""
    import chainrule as cr

    checked = 0
    for page in sorted((DOCS / "reference").glob("*.md")):
        for kind, code, _, _ in [(m.group(1), m.group(2), 0, 0)
                                 for m in FENCE.finditer(page.read_text())]:
            if kind != "python":
                continue
            for line in code.strip().splitlines():
                name, _, rest = line.partition("(")
                obj = cr
                for part in name.split("."):
                    obj = getattr(obj, part)
                assert f"({rest}" == _plain_signature(obj), f"{page.name}: {line}"
                checked += 1
    assert checked >= 15


# --------------------------------------------------------------------------- README and links
def _links(md: str) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)\s]+)\)", md) if "://" not in m]


def test_readme_starts_with_the_quickstart():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks and blocks[0] == 'pip install -e ".[dev]" && chainrule train\npython -m pytest\n'
    assert readme.index("## Quickstart") < readme.index("```bash")


def test_readme_links_resolve_and_reach_the_acceptance_pages():
    """From the README, in at most two clicks: training on a CSV, nn.MLP's signature, the
    lecture's forward pass (each a page the README links or a page those link)."""
    readme = (ROOT / "README.md").read_text()
    first = []
    for link in _links(readme):
        target = (ROOT / link.split("#")[0]).resolve()
        assert target.exists(), f"README links to {link}, which does not exist"
        first.append(target)
    reach = set(first)
    for page in first:
        if page.suffix == ".md":
            reach |= {(page.parent / link.split("#")[0]).resolve()
                      for link in _links(page.read_text()) if not link.startswith("#")}
    for goal in ("how-to/train-csv.md", "reference/nn.md", "tutorial/03-forward-pass.md"):
        assert (DOCS / goal).resolve() in reach, goal
    assert "mkdocs serve" in readme


# --------------------------------------------------------------------------- runnable pages
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
RUNNER = r'''
import contextlib, io, json, subprocess, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
results = []
for kind, code in blocks:
    if kind == "bash":
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", code], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        results.append({"out": p.stdout, "ok": p.returncode == 0})
    else:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"<block {len(results) + 1}>", "exec"), namespace)
            results.append({"out": buf.getvalue(), "ok": True})
        except BaseException:
            results.append({"out": buf.getvalue() + traceback.format_exc(), "ok": False})
    if not results[-1]["ok"]:
        break
print(json.dumps(results))
'''


def page_blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(kind, code, expected output or None) for each block the test runs."""
    text = page.read_text()
    run_bash = "<!-- docs-test: run bash -->" in text
    assert not re.search(r"^[ \t]+```python", text, re.M), f"{page}: an indented python block"
    fences = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for k, (kind, code, _, end) in enumerate(fences):
        if kind == "python" or (kind == "bash" and run_bash):
            expected = None
            if k + 1 < len(fences) and fences[k + 1][0] == "output" \
                    and not text[end:fences[k + 1][2]].strip():
                expected = fences[k + 1][1]
            out.append((kind, code, expected))
    return out


def matches(expected: str, actual: str) -> bool:
    """``expected``'s lines against ``actual``'s: ``...`` alone is any lines, inside a line any
    text; trailing blanks ignored."""
    pattern = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "...":
            pattern.append(r"(?:.*\n)*?")
        else:
            parts = [re.escape(p) for p in line.rstrip().split("...")]
            pattern.append(".*?".join(parts) + r"\n")
    body = "\n".join(x.rstrip() for x in actual.rstrip("\n").split("\n")) + "\n"
    return re.fullmatch("".join(pattern), body) is not None


RUNNABLE = sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts) + [
    ROOT / "README.md"]


def test_the_tutorial_and_the_guides_have_code_that_runs():
    for page in [*DOCS.glob("tutorial/0*.md"), *DOCS.glob("how-to/*.md")]:
        if page.name not in ("index.md", "distributed.md"):   # (distributed: needs mpiexec)
            assert any(kind == "python" or kind == "bash" for kind, _, _ in page_blocks(page)), page


@pytest.mark.parametrize("page", [p for p in RUNNABLE if page_blocks(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_runs_and_prints_what_the_page_says(page, tmp_path):
    blocks = page_blocks(page)
    # one BLAS thread: the same sums in the same order on any machine, and no threads spinning
    # against the other tests on a loaded CI machine
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", NO_COLOR="1", COLUMNS="100",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    # the chainrule command of this interpreter's environment, even when it is not activated
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-c", RUNNER], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300,
                          input=json.dumps([[kind, code] for kind, code, _ in blocks]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for i, ((kind, code, expected), res) in enumerate(zip(blocks, results), 1):
        where = f"{page.relative_to(ROOT)}, {kind} block {i}:\n{code}"
        assert res["ok"], f"{where}\nfailed:\n{res['out']}"
        if expected is not None:
            assert matches(expected, res["out"]), \
                f"{where}\nprinted:\n{res['out']}\nthe page says:\n{expected}"
        elif kind == "python":
            assert not res["out"], f"{where}\nprints, but the page shows no output:\n{res['out']}"
    assert len(results) == len(blocks)


def test_the_output_check_can_fail():
    assert matches("h(x) = 0.489\n", "h(x) = 0.489\n")
    assert not matches("h(x) = 0.489\n", "h(x) = 0.490\n")
    assert matches("a\n...\nz = ...\n", "a\nb\nc\nz = 12\n")
    assert not matches("a\n", "a\nb\n")


# --------------------------------------------------------------------------- pictures
def test_pictures_are_made_by_the_script(tmp_path):
    """docs/make_pictures.py draws the pictures (the playground's needs a browser: its own test
    makes that screenshot); the table beside the memory plot is what the command prints now."""
    proc = subprocess.run([sys.executable, str(DOCS / "make_pictures.py"), "xor", "memory",
                           "distributed", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("xor_regions.png", "memory.png", "distributed_scaling.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name
        assert (DOCS / name).is_file(), f"docs/{name} is not there"
    assert (tmp_path / "memory.txt").read_text() == (DOCS / "memory.txt").read_text(), \
        "docs/memory.txt is stale: run python docs/make_pictures.py memory"
    bad = subprocess.run([sys.executable, str(DOCS / "make_pictures.py"), "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown picture 'nope'" in bad.stderr
