"""The README's command and scenario tables, generated from the registries (a test keeps the
README in step).

    python -m commands.reference                print the command table
    python -m commands.reference --block NAME   print one block (commands, scenarios)
    python -m commands.reference --write        rewrite the generated blocks of README.md
"""
from __future__ import annotations

import sys
from pathlib import Path

from .dispatch import load_commands
from .meta import summary
from .registry import CATEGORIES, all_commands

TITLES = {"core": "Core", "extension": "Extensions", "meta": "Meta-commands",
          "target": "Acting on the simulated machine", "lab": "Labs"}


def markdown() -> str:
    load_commands()
    commands = all_commands()
    out: list[str] = []
    for category in CATEGORIES:
        group = [c for c in commands if c.category == category]
        if not group:
            continue
        out += [f"**{TITLES[category]}**", "", "| command | what it does |", "| --- | --- |"]
        for cmd in group:
            syntax = cmd.syntax.replace("|", "\\|")
            text = summary(cmd).replace("|", "\\|")
            if cmd.aliases:
                text += f" (also {', '.join(f'`{a}`' for a in cmd.aliases)})"
            out.append(f"| `{syntax}` | {text} |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def scenarios_markdown() -> str:
    from kdsim.control import list_scenarios
    rows = [f"| `{name}` | {description} |" for name, description in list_scenarios()]
    return "\n".join(["| scenario | what it is |", "| --- | --- |", *rows])


BLOCKS = {"commands": markdown, "scenarios": scenarios_markdown}


def _markers(name: str) -> tuple[str, str]:
    start = f"<!-- {name}:start"
    return start, f"<!-- {name}:end -->"


def readme_block(readme: str, name: str) -> str:
    """A generated block as it stands in the README text."""
    start, end = _markers(name)
    begin = readme.index("-->", readme.index(start)) + 3
    return readme[begin:readme.index(end)].strip("\n")


def write(readme_path: Path) -> None:
    text = readme_path.read_text(encoding="utf-8")
    for name, generate in BLOCKS.items():
        start, end = _markers(name)
        begin = text.index("-->", text.index(start)) + 3
        text = text[:begin] + "\n" + generate() + "\n" + text[text.index(end):]
    readme_path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write(Path(__file__).resolve().parent.parent / "README.md")
    elif "--block" in sys.argv:
        print(BLOCKS[sys.argv[sys.argv.index("--block") + 1]]())
    else:
        print(markdown())
