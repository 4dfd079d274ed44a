"""The teaching layer: `.lab` (the briefing), `.hint` (one hint at a time), `.check ANSWER`.

The lab is found from the scenario name and seed the target carries in its metadata (the seed
picks a lab file's variant), so the commands work the same on a live lab, after `.reboot`, and
on a dump saved from a lab.  Nothing here
looks at the simulated machine: a lab's answer is judged against its `Lab.answers`, never
computed from the simulator's objects.
"""
from __future__ import annotations

import os
import re
import textwrap
import weakref
from typing import TYPE_CHECKING

from kdsim.control import Lab, scenario_lab

from .errors import DebuggerError
from .expr import decimal
from .registry import command

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

WIDTH = 79                      # a kd window's width: the width of piped output and logs
MIN_WIDTH = 40
ITEM = re.compile(r"^(\s*)((?:\d+\.|-|\*)\s+)?")   # a line's indent and list marker
# hints given so far, per session and per lab (a `.reboot` into the same lab keeps them)
_GIVEN: "weakref.WeakKeyDictionary[Session, dict[str, int]]" = weakref.WeakKeyDictionary()


def width(session: "Session | None" = None) -> int:
    """The width the lab's texts are wrapped to: the terminal's, less one column, when the
    session prints to a terminal; a kd window's otherwise (so transcripts do not vary)."""
    stream = getattr(session, "stdout", None)
    try:
        if stream is not None and stream.isatty():
            return max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns - 1)
    except (AttributeError, ValueError, OSError):
        pass
    return WIDTH


def _wrap(text: str, columns: int = WIDTH) -> str:
    """A message as the lab prints it: wrapped at `columns`."""
    return textwrap.fill(text, columns, break_long_words=False, break_on_hyphens=False)


def _item(line: str) -> tuple[str, str]:
    """A line's indentation and its list marker ('' when it has none)."""
    found = ITEM.match(line)
    return (found[1], found[2] or "") if found else ("", "")


def wrap_briefing(text: str, columns: int) -> str:
    """A briefing as written, except that each paragraph or list item with a line longer
    than `columns` is filled again to `columns`, its indentation kept."""
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text.rstrip()):
        items: list[list[str]] = []
        for line in block.split("\n"):
            if not items or _item(line)[1]:
                items.append([line])
            else:
                items[-1].append(line)
        lines = []
        for item in items:
            if max(len(line) for line in item) <= columns:
                lines += item
                continue
            first, marker = _item(item[0])
            indent = first + " " * len(marker)
            body = " ".join(line.strip() for line in item)
            lines.append(textwrap.fill(body, columns, initial_indent=first,
                                       subsequent_indent=indent, break_long_words=False,
                                       break_on_hyphens=False, fix_sentence_endings=True))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def current_lab(session: "Session") -> tuple[str, Lab | None]:
    """(scenario name, its lab) of the session's target; the lab is None when it has none."""
    name = str(session.target.meta.get("scenario") or "")
    if not name:
        return "", None
    try:
        return name, scenario_lab(name, int(session.target.meta.get("seed") or 0))
    except ValueError:          # a dump of a scenario this version does not know
        return name, None


def _lab(session: "Session") -> tuple[str, Lab]:
    name, lab = current_lab(session)
    if lab is None:
        where = f"scenario '{name}'" if name else "this target"
        raise DebuggerError(_wrap(f"No lab is loaded ({where} has none).  kdsim "
                                  "--list-scenarios lists the labs; open one with kdsim "
                                  "--scenario NAME."))
    return name, lab


@command(".lab", syntax=".lab", category="lab",
         help="Show the briefing of the lab this machine was opened for: the story, what to "
              "look at, and what .check asks.")
def lab_briefing(session: "Session", args: str) -> str:
    _, lab = _lab(session)
    count = len(lab.hints)
    columns = width(session)
    return (wrap_briefing(lab.briefing.strip("\n"), columns) + "\n\n"
            + _wrap(f".hint gives a hint ({count} in all, one at a time); .check ANSWER "
                    f"checks your answer: {lab.question}.", columns))


@command(".hint", syntax=".hint [Number]", category="lab",
         help="Give the lab's next hint, each a little more telling than the last; "
              ".hint N shows hint N again once it has been given.")
def hint(session: "Session", args: str) -> str:
    name, lab = _lab(session)
    given = _GIVEN.setdefault(session, {})
    total = len(lab.hints)
    text = args.strip()
    if text:
        number = decimal(text)
        if number is None or not 1 <= number <= total:
            raise DebuggerError(f"There are {total} hints: .hint N takes N from 1 to {total}.")
        if number > given.get(name, 0):
            raise DebuggerError(f"Hint {number} has not been given yet: .hint gives the "
                                "next one.")
        return _hint_text(lab, number, width(session))
    number = given.get(name, 0) + 1
    if number > total:
        return _wrap(f"No more hints: all {total} have been given (.hint N shows one "
                     f"again).  .check ANSWER when you have it.", width(session))
    given[name] = number
    return _hint_text(lab, number, width(session))


def _hint_text(lab: Lab, number: int, columns: int) -> str:
    return _wrap(f"Hint {number} of {len(lab.hints)}: {lab.hints[number - 1]}", columns)


def answer_text(args: str) -> str:
    """The answer as typed, without surrounding blanks and quotes."""
    return args.strip().strip("'\"`").strip()


def is_right(lab: Lab, answer: str) -> bool:
    """An answer against the lab's accepted answers, case ignored."""
    return any(answer.lower() == accepted.lower() for accepted in lab.answers)


@command(".check", syntax=".check Answer", category="lab",
         help="Check your answer to the lab's question (case does not matter).")
def check(session: "Session", args: str) -> str:
    _, lab = _lab(session)
    answer = answer_text(args)
    if not answer:
        raise DebuggerError(_wrap(f"Usage: .check ANSWER, where ANSWER is {lab.question}."))
    if is_right(lab, answer):
        return _wrap(f"Right: {answer} is {lab.question}.")
    named = answer_kind(lab, answer)
    if named and lab.kind and named != lab.kind:
        return _wrap(f"Not right: {answer} is a {named}, and the question asks for a "
                     f"{lab.kind}: {lab.question}.")
    return _wrap(f"Not right: {answer} is not {lab.question}.  Look again (.hint gives a "
                 "hint).")


def answer_kind(lab: Lab, answer: str) -> str:
    """What an answer names in this lab: "driver", "tag", or "" when it names neither.  A tag
    is matched as typed (tags are case-sensitive), a driver case-insensitively."""
    if answer in lab.tags:
        return "tag"
    if answer.lower() in {d.lower() for d in lab.drivers} or answer.lower().endswith(".sys"):
        return "driver"
    return ""
