"""The ``chainrule`` application object and what every command shares: one-line user errors
(exit 2), the internal-error report (exit 1), Ctrl-C (130), ``--version`` and the entry point.

The commands live beside it: ``lecture`` (explain, plot), ``training`` (train), ``scoring``
(evaluate, predict), ``export`` (export), ``info`` (datasets, memory), ``convert`` (convert),
``playground`` (the web app).

Every user error (a bad file, an unknown option value, shapes that do not fit) ends with a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from ..errors import ChainruleError

app = typer.Typer(
    name="chainrule",
    help="Feed-forward neural networks and backpropagation, from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plot_app = typer.Typer(help="Pictures of the hypothesis (PNG or SVG).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


def short_helps(*apps: typer.Typer) -> None:
    """Give each command without one a ``short_help``: its docstring's first paragraph on one
    line. (Typer's Rich help keeps the docstring's line breaks in the commands table, so a
    wrapped docstring showed as ragged lines in ``chainrule --help``.)"""
    import inspect

    for a in apps:
        for info in a.registered_commands:
            if info.short_help is None and info.callback is not None:
                doc = inspect.getdoc(info.callback) or ""
                info.short_help = " ".join(doc.split("\n\n")[0].split()) or None


def fail(message: str, every_rank: bool = False) -> None:
    """Print a one-line user error and exit with code 2. In a data-parallel run every rank
    usually meets the same error and rank 0 says it; an error of some ranks only
    (``every_rank``) is said by each of them, naming its rank."""
    from .. import distributed

    if distributed.rank() == 0 and not every_rank:
        typer.echo(f"error: {_one_line(message)}", err=True)
    elif every_rank:
        typer.echo(f"error (rank {distributed.rank()}): {_one_line(message)}", err=True)
    raise typer.Exit(2)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _crash_report(exc: BaseException) -> str:
    """Save the traceback of an unexpected exception; returns where it went."""
    import os
    import tempfile
    import time
    import traceback

    base = os.environ.get("CHAINRULE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "chainrule")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (os.path.join(base, "crashes"), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w") as fh:
                fh.write(f"chainrule {__import__('chainrule').__version__}\n{' '.join(sys.argv)}\n")
                fh.write(text)
            return path
        except OSError:
            continue
    return "(could not be saved)"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors (chainrule's errors, unreadable files, too little memory) end with one line
    and exit code 2; Ctrl-C with one line and 130; anything else is a bug: one line
    ``internal error: ...`` with exit code 1 and the traceback saved to a file."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..runs import TrainingInterrupted

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except TrainingInterrupted as exc:
            typer.echo(_one_line(str(exc)), err=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except ChainruleError as exc:
            fail(str(exc), getattr(exc, "every_rank", False))
        except (OSError, UnicodeDecodeError) as exc:
            fail(str(exc))
        except MemoryError:
            fail("not enough memory for this command (lower --batch-size or the layer sizes, "
                 "or set --memory-budget)")
        except Exception as exc:  # a bug: say so, keep the traceback for the report
            where = _crash_report(exc)
            typer.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
                       f"(traceback saved to {where}; please report it)", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"chainrule {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Feed-forward neural networks and backpropagation, from the command line."""


READ_OPTS = {
    "no_header": typer.Option(False, "--no-header", help="The CSV file has no header row: "
                              "columns are taken by position."),
    "delimiter": typer.Option(None, "--delimiter", help="The CSV separator (default: sniffed "
                              "from , ; tab |)."),
    "encoding": typer.Option(None, "--encoding", help="The CSV text encoding (default UTF-8; "
                             "UTF-16 with a byte-order mark)."),
}


def _given(exc: Exception) -> str:
    """The value the user gave for the option a usage error is about, if any."""
    param = getattr(exc, "param", None)
    args = sys.argv[1:]
    for opt in getattr(param, "opts", None) or []:
        for i, a in enumerate(args):
            if a == opt and i + 1 < len(args):
                return f" (got {args[i + 1]!r})"
            if a.startswith(opt + "="):
                return f" (got {a[len(opt) + 1:]!r})"
    return ""


def main() -> None:
    """Console-script entry point: usage errors (unknown option, bad value) are one line too."""
    try:    # typer >= 0.2x vendors click: its errors are not click's, even when click is
        from typer._click.exceptions import UsageError  # installed (uvicorn needs it)
    except ImportError:
        from click.exceptions import UsageError  # type: ignore[no-redef]

    try:
        code = app(standalone_mode=False)   # an Exit raised by a command comes back as its code
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
            sys.exit(2)
        path, ctx = [], exc.ctx
        while ctx is not None and ctx.parent is not None:   # the subcommands, not the program
            path.insert(0, ctx.info_name)
            ctx = ctx.parent
        if exc.ctx is None:         # some parse errors carry no context: read the command line
            cmd = typer.main.get_command(app)
            for arg in sys.argv[1:]:
                sub = getattr(cmd, "commands", {}).get(arg)
                if sub is None:
                    break
                path.append(arg)
                cmd = sub
        hint = f" (see {' '.join(['chainrule', *path, '--help'])})"
        typer.echo(f"error: {_one_line(exc.format_message())}{_given(exc)}{hint}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
