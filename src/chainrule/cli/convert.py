"""``chainrule convert``: a large CSV file prepared once as a memory-mappable ``.npy`` (or
Parquet), streaming, under the reader's rules."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import READ_OPTS, app, user_errors


@app.command()
@user_errors
def convert(
    source: Path = typer.Argument(..., help="The CSV file to convert."),
    out: Path = typer.Argument(..., help="The output: .npy (memory-mapped by train, evaluate "
                               "and predict) or .parquet."),
    target: str = typer.Option(..., "--target", help="The target column (a name, or a 0-based "
                               "index with --no-header)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Keep missing cells "
                                       "(train then needs --impute mean|median)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", help="Rows parsed at a time: the "
                                   "memory used is bounded by this, not by the file."),
    no_header: bool = READ_OPTS["no_header"],
    delimiter: str = READ_OPTS["delimiter"],
    encoding: str = READ_OPTS["encoding"],
) -> None:
    """Convert a CSV file to .npy (or .parquet) in chunks, checking every cell as train would;
    then `chainrule train --dataset OUT.npy --target COL` memory-maps it."""
    from ..data.convert import convert_csv
    from ..memory.units import format_bytes

    result = convert_csv(source, out, target=target, header=not no_header, delimiter=delimiter,
                         encoding=encoding, allow_missing=allow_missing, overwrite=overwrite,
                         chunk_rows=chunk_rows)
    cats = [n for n, k in result.kinds.items() if k == "categorical"]
    typer.echo(f"wrote {result.rows:,} rows x {len(result.columns)} columns to {result.path} "
               f"({format_bytes(result.bytes)})" + (f"; categorical: {', '.join(cats)}"
                                                     if cats else ""))
