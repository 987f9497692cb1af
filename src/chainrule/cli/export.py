"""``chainrule export``: a trained model in a format other runtimes serve (ONNX)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from .app import app, fail, user_errors


class ExportFormat(str, Enum):
    onnx = "onnx"


@app.command()
@user_errors
def export(
    model: Path = typer.Argument(..., help="A run directory or a model file written by "
                                 "`chainrule train`."),
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", "-f",
                                        help="onnx (the only format so far)."),
    output: Path = typer.Option(None, "--output", "-o", help="The file to write. Default: "
                                "model.onnx in the run directory (beside the model file)."),
    opset: int = typer.Option(None, "--opset", help="The ONNX operator set. Default: 17."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime's outputs "
                               "with chainrule's on random rows before writing (when onnxruntime "
                               "is installed)."),
) -> None:
    """Export a trained model, its preprocessing included: raw rows in; the network's outputs
    and, for a classifier, the class index ("label") out; the class and feature names in the
    file's metadata. The batch size is free."""
    from .. import onnx as cr_onnx
    from ..runs import load_run_model

    rm = load_run_model(model)
    if output is None:
        output = rm.path.with_suffix(".onnx")
    if output.resolve() == rm.path.resolve():
        fail("--output would overwrite the model file")
    proto = cr_onnx.export_run(rm, None, opset=cr_onnx.DEFAULT_OPSET if opset is None else opset)
    checked = "not checked (install onnxruntime: pip install 'chainrule[onnx]')"
    if check:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is not None:
            rows = cr_onnx.sample_rows(rm)
            err = cr_onnx.verify(proto, rm.model, rows)
            checked = f"onnxruntime agrees with chainrule to {err:.1e} on {len(rows)} random rows"
    else:
        checked = "not checked (--no-check)"
    from ..io import atomic_write

    atomic_write(output, proto.SerializeToString())
    outs = ", ".join(f"{o.name} {_dims(o)}" for o in proto.graph.output)
    typer.echo(f"wrote {output} (ONNX opset {proto.opset_import[0].version}; input "
               f"{proto.graph.input[0].name} {_dims(proto.graph.input[0])} "
               f"{_dtype(proto.graph.input[0])}; outputs {outs}); {checked}")


def _dims(value) -> str:  # noqa: ANN001 - an onnx ValueInfoProto
    dims = value.type.tensor_type.shape.dim
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + \
        ("," if len(dims) == 1 else "") + ")"


def _dtype(value) -> str:  # noqa: ANN001
    return {1: "float32", 11: "float64", 7: "int64"}.get(value.type.tensor_type.elem_type, "?")
