"""Write the sample transcripts of docs/labs/*.md from the labs themselves.

    python docs/labs/generate.py            rewrite every page's transcripts
    python docs/labs/generate.py --check    exit 1 if a page no longer matches its lab

A page marks each transcript with the `kdsim` arguments that produce it:

    <!-- transcript: --scenario overrun --seed 1 --scale 0.25 -cf overrun.cmd -->
    ```text
    ...
    ```
    <!-- /transcript -->

and the block between the marks is exactly what `python -m commands ARGUMENTS` prints with no
input after the command file (a `-cf` name is a solution file in kdsim/scenarios/).  The runs
go through the real entry point, one process each, as many at a time as there are processors.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PAGES = Path(__file__).resolve().parent
ROOT = PAGES.parent.parent
SOLUTIONS = ROOT / "kdsim" / "scenarios"
TIMEOUT = 300
MARK = re.compile(r"(?P<open><!-- transcript: (?P<args>[^\n]*?) -->\n)(?P<body>.*?)"
                  r"(?P<close><!-- /transcript -->)", re.S)
FENCE = "```"


@dataclass(frozen=True)
class Transcript:
    page: Path
    args: str          # as written in the page's mark
    body: str          # the fenced block the page holds now


def transcripts(pages: list[Path] | None = None) -> list[Transcript]:
    """Every marked transcript of the given pages (all of docs/labs by default)."""
    found = []
    for page in pages or sorted(PAGES.glob("*.md")):
        for match in MARK.finditer(page.read_text(encoding="utf-8")):
            found.append(Transcript(page, match["args"], match["body"]))
    return found


def command_line(args: str) -> list[str]:
    """The entry point and the mark's arguments, a `-cf` name resolved to its solution file."""
    words = shlex.split(args)
    if "-cf" in words:
        at = words.index("-cf") + 1
        words[at] = str(SOLUTIONS / words[at])
    return [sys.executable, "-m", "commands", *words]


def fenced(output: str) -> str:
    if not output.endswith("\n"):
        output += "\n"
    return f"{FENCE}text\n{output}{FENCE}\n"


def run(args: str) -> str:
    """What kdsim prints for the arguments of a mark, with no input after the command file."""
    done = subprocess.run(command_line(args), cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"kdsim {args} exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8")


def run_all(arguments: list[str]) -> dict[str, str]:
    """`run` for each set of arguments, as many at a time as there are processors."""
    unique = list(dict.fromkeys(arguments))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(unique, pool.map(run, unique)))


def regenerate(pages: list[Path] | None = None) -> list[Path]:
    """Rewrite the pages whose transcripts changed; returns them."""
    marks = transcripts(pages)
    blocks = run_all([t.args for t in marks])
    changed = []
    for page in dict.fromkeys(t.page for t in marks):
        text = page.read_text(encoding="utf-8")
        new = MARK.sub(lambda m: m["open"] + fenced(blocks[m["args"]]) + m["close"], text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


def stale(pages: list[Path] | None = None) -> list[Transcript]:
    """The transcripts that no longer match what their lab prints."""
    marks = transcripts(pages)
    blocks = run_all([t.args for t in marks])
    return [t for t in marks if t.body != fenced(blocks[t.args])]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        old = stale()
        for t in old:
            print(f"{t.page.relative_to(ROOT)}: stale transcript of kdsim {t.args}")
        return 1 if old else 0
    if argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for page in regenerate():
        print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
