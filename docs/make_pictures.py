"""Draw the pictures in docs/ from the code that makes them, so that no page's command overwrites
a tracked file:

    python docs/make_pictures.py                      # all of them, into docs/
    python docs/make_pictures.py xor memory           # some of them
    python docs/make_pictures.py --out /tmp/pictures  # somewhere else (the tests do this)

=================  ========================================================================
picture            made by
=================  ========================================================================
xor                ``chainrule plot regions``: a 2-4-1 tanh MLP trained on XOR, its decision
                   regions and the hyperplanes s_j^(1) = 0 (``xor_regions.png``)
memory             ``chainrule memory`` for a 784-1024x9-10 MLP at batches 256..16384 within
                   2 GiB: the table (``memory.txt``) and its plot (``memory.png``)
distributed        the projected scaling of data-parallel training, drawn from the measured
                   ``benchmarks/results/distributed.json`` (``distributed_scaling.png``; run
                   ``python -m benchmarks.distributed`` to measure again)
playground         ``tests/test_playground_browser.py`` driving ``chainrule playground`` in
                   chromium: its screenshot of spirals with a clicked point
                   (``playground.png``; needs chromium and the dev extra)
=================  ========================================================================

Each is written atomically (a temporary file, then a rename), and the script says what it wrote.
It needs the ``cli`` and ``plot`` extras (``pip install -e ".[dev]"`` has them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PICTURES = ("xor", "memory", "distributed", "playground")
MEMORY_ARGS = ["--hidden", ",".join(["1024"] * 9), "--batch-sizes", "256,1024,4096,16384",
               "--budget", "2GiB"]


def _chainrule(*args: str) -> str:
    """Run the ``chainrule`` command line of this checkout; its standard output."""
    env = dict(os.environ, MPLBACKEND="Agg", COLUMNS="100")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "chainrule", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"chainrule {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def _place(made: Path, target: Path) -> Path:
    """Copy ``made`` beside ``target``, then rename it over ``target`` (never half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(made, partial)
    os.replace(partial, target)
    print(f"wrote {target}")
    return target


def xor(out: Path, work: Path) -> list[Path]:
    _chainrule("plot", "regions", str(work / "xor_regions.png"))
    return [_place(work / "xor_regions.png", out / "xor_regions.png")]


def memory(out: Path, work: Path) -> list[Path]:
    table = _chainrule("memory", *MEMORY_ARGS, "--plot", str(work / "memory.png"))
    lines = [line for line in table.splitlines() if not line.startswith("wrote ")]
    command = "chainrule memory " + " ".join(MEMORY_ARGS) + " --plot docs/memory.png"
    (work / "memory.txt").write_text(f"$ {command}\n" + "\n".join(lines) + "\n")
    return [_place(work / "memory.png", out / "memory.png"),
            _place(work / "memory.txt", out / "memory.txt")]


def distributed(out: Path, work: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.distributed import RESULTS, plot
    finally:
        sys.path.remove(str(ROOT))
    results = json.loads((RESULTS / "distributed.json").read_text())
    plot(results, work / "distributed_scaling.png")
    return [_place(work / "distributed_scaling.png", out / "distributed_scaling.png")]


def playground(out: Path, work: Path) -> list[Path]:
    shots = work / "shots"
    env = dict(os.environ, CHAINRULE_PLAYGROUND_SHOTS=str(shots), CI="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_playground_browser.py"], cwd=ROOT, env=env)
    shot = shots / "spirals-explained.png"
    if proc.returncode != 0 or not shot.is_file():
        raise SystemExit("the playground's browser test failed (it needs chromium and the dev "
                         "extra); no picture written")
    return [_place(shot, out / "playground.png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="pictures: " + ", ".join(PICTURES))
    parser.add_argument("pictures", nargs="*", metavar="PICTURE",
                        help=f"which to draw ({', '.join(PICTURES)}); default all")
    parser.add_argument("--out", type=Path, default=DOCS, help="the folder (default docs/)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.pictures if p not in PICTURES]
    if unknown:
        parser.error(f"unknown picture {unknown[0]!r}; choose from {', '.join(PICTURES)}")
    chosen = args.pictures or list(PICTURES)
    makers = {"xor": xor, "memory": memory, "distributed": distributed,
              "playground": playground}
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"pictures-{name}-") as work:
            makers[name](args.out, Path(work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
