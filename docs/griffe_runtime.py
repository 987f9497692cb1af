"""A griffe extension for chainrule's API reference: what static analysis cannot see, taken from
the imported package, and a check that every public name has a docstring.

mkdocstrings reads chainrule's source without running it (griffe's static analysis). Some public
names are invisible or misread that way; this extension fills them in from the imported objects,
so the reference shows what ``help()`` shows:

- functions made by a factory (``exp = _floating_unary(Exp)``: the function's docstring is the
  primitive's, set at import time) look like plain attributes: they become functions with the
  runtime signature and docstring;
- another name for the same function or class (``clamp = clip``, ``SquareLoss = MSELoss``)
  becomes an alias of it, documented with its target's docstring;
- names that ``chainrule`` loads lazily through its module ``__getattr__`` (``cr.save``,
  ``cr.load``, ``cr.from_dlpack``, ...) are added as aliases of their definitions;
- a docstring assembled at import time (the scikit-learn estimators share their parameter lists)
  is taken from the class.

Docstrings follow Google's style, except in ``chainrule.sklearn``, whose estimators document
themselves as scikit-learn's do (numpydoc): the extension parses those with griffe's numpy parser.

It also rewrites the reStructuredText that some docstrings use into Markdown (``:func:`x``` and
``:math:`x``` become code, a ``.. math::`` block a LaTeX code block; no JavaScript is needed to
read them), and it logs a warning for every public name of ``REFERENCE_MODULES`` without a
docstring, which fails ``mkdocs build --strict``. Public: in the module's ``__all__``, or, without
one, defined there under a name without a leading underscore; for a public class, its methods and
properties whose names do not start with an underscore.

Loaded by ``mkdocs.yml`` and by ``tests/test_docs.py``. Nothing here changes chainrule; it is a
build tool, not part of the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
import types
from typing import Any

import griffe

logger = griffe.get_logger("griffe_runtime")

#: The modules the API reference documents, each on a page of docs/reference/.
REFERENCE_MODULES = [
    "chainrule", "chainrule.nn", "chainrule.nn.functional", "chainrule.nn.init",
    "chainrule.optim", "chainrule.optim.lr_scheduler", "chainrule.data", "chainrule.train",
    "chainrule.memory", "chainrule.sklearn", "chainrule.reference", "chainrule.reference.lecture",
    "chainrule.distributed", "chainrule.onnx", "chainrule.interop", "chainrule.ops",
]
if importlib.util.find_spec("chainrule.compile") is not None:  # merged from another branch
    REFERENCE_MODULES.append("chainrule.compile")

#: Docstrings in numpydoc style (scikit-learn's), where the rest are Google style.
NUMPYDOC = "chainrule.sklearn"


# --------------------------------------------------------------------------- runtime objects
def _annotation(ann: Any) -> str | None:
    if ann is inspect.Parameter.empty:
        return None
    return ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _function_from_runtime(name: str, fn: types.FunctionType,
                           where: griffe.Object) -> griffe.Function:
    sig = inspect.signature(fn)
    params = griffe.Parameters(*(
        griffe.Parameter(
            p.name, annotation=_annotation(p.annotation), kind=_KINDS[p.kind],
            default=None if p.default is inspect.Parameter.empty else repr(p.default))
        for p in sig.parameters.values()))
    func = griffe.Function(name, lineno=where.lineno, endlineno=where.endlineno,
                           parameters=params, returns=_annotation(sig.return_annotation))
    doc = inspect.getdoc(fn)
    if doc:
        func.docstring = griffe.Docstring(doc, parent=func)
    return func


def _canonical(obj: Any) -> str | None:
    """``module.qualname`` of a function or class defined at a module's or class's top level."""
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        return None
    return f"{mod}.{qual}"


def _runtime(path: str) -> Any:
    """The object at a dotted path, from the modules already imported (None if not found)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj: Any = mod
            for p in parts[i:]:
                obj = inspect.getattr_static(obj, p, None)
                if obj is None:
                    return None
            return obj
    return None


# --------------------------------------------------------------------------- reST -> Markdown
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|math):`~?([^`]+)`")
_MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")
_LITERAL = re.compile(r"(?<=\S)::$")


def markdown(text: str) -> str:
    """reStructuredText roles, ``.. math::`` blocks and ``Example::`` markers as Markdown."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH.match(lines[i])
        if m is None:
            line = lines[i]
            nxt = next((x for x in lines[i + 1:] if x.strip()), "")
            if _LITERAL.search(line) and len(nxt) - len(nxt.lstrip()) > len(line) - len(
                    line.lstrip()):
                line = line[:-1]  # "Example::" + indented block: the block is code already
            out.append(line)
            i += 1
            continue
        indent = m.group("indent")
        body = [m.group("first")] if m.group("first").strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        first, rest = (body[0].strip(), body[1:]) if body else ("", [])
        code = ([first] if first else []) + textwrap.dedent("\n".join(rest)).split("\n")
        out += [f"{indent}```latex"] + [f"{indent}{c}" if c else "" for c in code]
        out += [f"{indent}```", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- public names
def public_members(mod: griffe.Module) -> list[tuple[str, griffe.Object | griffe.Alias]]:
    """The public names of a module: ``__all__``, or the names it defines without a leading
    underscore."""
    exports = mod.exports
    if exports is not None:
        names = [e if isinstance(e, str) else e.name for e in exports]
        return [(n, mod.members[n]) for n in names if n in mod.members]
    return [(n, m) for n, m in mod.members.items()
            if not n.startswith("_") and not m.is_alias]


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def undocumented(pkg: griffe.Module, modules: list[str] = REFERENCE_MODULES) -> list[str]:
    """Every public name of ``modules`` (and every public method or property of their public
    classes) without a docstring, or whose alias does not resolve, as ``module.name``."""
    missing: list[str] = []
    seen: set[str] = set()
    for path in modules:
        mod = pkg if path == pkg.path else pkg[path[len(pkg.path) + 1:]]
        for name, member in public_members(mod):
            obj = _target(member)
            if obj is None:
                missing.append(f"{path}.{name} (unresolved)")
                continue
            if obj.path in seen:
                continue
            seen.add(obj.path)
            if not obj.docstring or not obj.docstring.value.strip():
                missing.append(f"{path}.{name}")
            if obj.is_class:
                for cname, cm in obj.members.items():
                    if cname.startswith("_") or cm.is_alias:
                        continue
                    routine = cm.is_function or "property" in cm.labels
                    if routine and not (cm.docstring and cm.docstring.value.strip()):
                        missing.append(f"{path}.{name}.{cname}")
    return missing


# --------------------------------------------------------------------------- the extension
class RuntimeMembers(griffe.Extension):
    """Fill in what static analysis misses (see the module docstring) and check docstrings."""

    def __init__(self, package: str = "chainrule", check: bool = True) -> None:
        super().__init__()
        self.package = package
        self.check = check

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        if pkg.path != self.package:
            return
        for path in REFERENCE_MODULES:
            importlib.import_module(path)
        self._parser = loader.docstring_parser
        self._parser_options = loader.docstring_options
        self._fix(pkg)
        self._markdown(pkg)
        if self.check:
            for name in undocumented(pkg):
                logger.warning("%s: a public name without a docstring", name)

    def _fix(self, obj: griffe.Object) -> None:
        runtime = _runtime(obj.path)
        if runtime is not None:
            self._fix_members(obj, runtime)
            if obj.is_module:
                self._add_lazy(obj, runtime)
            own = runtime.__dict__.get("__doc__") if inspect.isclass(runtime) else None
            if not obj.docstring and isinstance(own, str) and own.strip():
                obj.docstring = griffe.Docstring(inspect.cleandoc(own), parent=obj)
        for member in list(obj.members.values()):
            if not member.is_alias and (member.is_module or member.is_class):
                self._fix(member)

    def _fix_members(self, obj: griffe.Object, runtime: Any) -> None:
        for name, member in list(obj.members.items()):
            if member.is_alias or not member.is_attribute or name.startswith("_"):
                continue
            if "property" in member.labels:
                continue
            value = inspect.getattr_static(runtime, name, None)
            if not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            target = _canonical(value)
            if target is not None and target != f"{obj.path}.{name}":
                obj.set_member(name, griffe.Alias(name, target, parent=obj))
            elif inspect.isfunction(value):
                obj.set_member(name, _function_from_runtime(name, value, member))

    def _add_lazy(self, mod: griffe.Module, runtime: types.ModuleType) -> None:
        for name in getattr(runtime, "__all__", ()):
            if name in mod.members:
                continue
            target = _canonical(getattr(runtime, name))
            if target is not None:
                mod.set_member(name, griffe.Alias(name, target, parent=mod))

    def _markdown(self, obj: griffe.Object) -> None:
        doc = obj.docstring
        if doc is not None:
            doc.value = markdown(doc.value)
            if obj.path.startswith(NUMPYDOC):
                doc.parser, doc.parser_options = griffe.Parser.numpy, {}
            elif doc.parser is None:  # made here, not by the loader
                doc.parser, doc.parser_options = self._parser, self._parser_options or {}
        for member in obj.members.values():
            if not member.is_alias:
                self._markdown(member)
