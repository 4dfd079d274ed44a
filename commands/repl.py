"""The two input loops: a prompt_toolkit prompt on a terminal, a plain line loop otherwise.

On a terminal: the real prompt, persistent history, Tab completion (commands, flags, symbols,
pool tags), the input coloured by `KdLexer`, Ctrl+C back to the prompt, Ctrl+D or `q` to leave,
and the `.more` pager.  From a pipe or a file: each command is echoed after its prompt, so the
transcript reads like a kd log.  A bracketed paste of several lines is a piped file in little:
each line runs as its own command, echoed after its prompt.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output

from .dispatch import execute, parse_name
from .interrupt import INTERRUPTS
from .lexer import KdLexer
from .meta import summary
from .registry import all_commands, lookup
from .session import Pager

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

MAX_COMPLETIONS = 200
_FLAG = re.compile(r"(?<![\w])[/-][A-Za-z]\w*")


def history_path(lab: str = "") -> Path:
    """$XDG_DATA_HOME/kdsim/history, or ~/.local/share/kdsim/history; a lab's is
    history-LAB beside it, so one lab's answers are not recalled in another."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    name = "history-" + re.sub(r"[^A-Za-z0-9_.-]", "_", lab) if lab else "history"
    return Path(base) / "kdsim" / name


def open_history(path: Path | None = None) -> History:
    """The persistent history, or an in-memory one when the data directory is not writable."""
    path = path or history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


class KdCompleter(Completer):
    """Completes the command name, then its flags (from its syntax), pool tags (for commands
    whose syntax takes a tag) and symbols."""

    def __init__(self, session: "Session"):
        self.session = session

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterator[Completion]:
        command = document.text_before_cursor.rsplit(";", 1)[-1].lstrip()
        word = document.get_word_before_cursor(WORD=True)
        if not any(ch.isspace() for ch in command):
            yield from self._names(command)
            return
        cmd = lookup(parse_name(command)[0])
        if word[:1] in ("/", "-"):
            flags = sorted(set(_FLAG.findall(cmd.syntax))) if cmd else []
            yield from _matching(flags, word, case=False)
            return
        if not word:
            return
        if cmd is not None and "tag" in cmd.syntax.lower():
            yield from _matching(self._safe(self.session.known_tags), word, case=True)
        yield from _symbols(self._safe(self.session.target.symbols.names), word)

    def _names(self, typed: str) -> Iterator[Completion]:
        low = typed.lower()
        for cmd in all_commands():
            for name in (cmd.name, *cmd.aliases):
                if name.lower().startswith(low):
                    yield Completion(name, -len(typed), display_meta=summary(cmd))

    @staticmethod
    def _safe(source) -> list[str]:
        try:
            return list(source())
        except Exception:  # completion must never break the prompt
            return []


def _matching(candidates: Iterable[str], word: str, *, case: bool) -> Iterator[Completion]:
    key = word if case else word.lower()
    for text in candidates:
        if (text if case else text.lower()).startswith(key):
            yield Completion(text, -len(word))


def _symbols(names: list[str], word: str) -> Iterator[Completion]:
    """`nt!ExAll` completes within nt; a bare `ExAll` finds the symbol in any module."""
    low = word.lower()
    found = 0
    for name in sorted(names, key=str.lower):
        full = name.lower()
        if full.startswith(low) or ("!" not in low and full.split("!", 1)[-1].startswith(low)):
            yield Completion(name, -len(word))
            found += 1
            if found >= MAX_COMPLETIONS:
                return


def run_line(session: "Session", line: str, *, echo: bool) -> None:
    """One line of input, recorded (echoed after its prompt when `echo`) and run; a Ctrl+C
    anywhere in it ends as `^C` and the session goes on (commands/interrupt.py)."""
    with INTERRUPTS.line(session):
        session.record_input(line, echo=echo)
        execute(session, line)


def run_plain(session: "Session", lines: Iterable[str]) -> None:
    """Commands from a pipe or file, each echoed after its prompt, until `q` or the end."""
    with INTERRUPTS.installed():
        for raw in lines:
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            run_line(session, line, echo=True)
            if session.quit_requested:
                return


class Paste:
    """A bracketed paste that holds whole lines: they run one by one, as a piped file's would;
    `tail`, the text after the last line end, stays on the prompt to be edited."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tail = ""

    def bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        @bindings.add(Keys.BracketedPaste)
        def _paste(event: KeyPressEvent) -> None:
            data = event.data.replace("\r\n", "\n").replace("\r", "\n")
            buffer = event.current_buffer
            if "\n" not in data:               # a word or an address: part of the line typed
                buffer.insert_text(data)
                return
            document = buffer.document
            *self.lines, tail = (document.text_before_cursor + data).split("\n")
            self.tail = tail + document.text_after_cursor
            event.app.erase_when_done = True    # the lines are echoed as they run instead
            event.app.exit(result="")

        return bindings

    def run(self, session: "Session", history: History) -> str:
        """Run the pasted lines, stopping at `q` or Ctrl+C (which drops the rest); the text
        the next prompt starts with."""
        lines, self.lines = self.lines, []
        for line in lines:
            if not line.strip():
                continue
            history.append_string(line)
            run_line(session, line, echo=True)
            if session.quit_requested or INTERRUPTS.broken:
                return ""
        return self.tail


def run_interactive(session: "Session", *, input: Input | None = None,
                    output: Output | None = None, history: History | None = None) -> None:
    """The terminal prompt, until `q` or Ctrl+D at an empty line.  Ctrl+C at the prompt discards
    the line; while a command runs it breaks the command (commands/interrupt.py)."""
    paste = Paste()
    prompt: PromptSession[str] = PromptSession(
        history=history if history is not None else open_history(),
        completer=KdCompleter(session), complete_while_typing=False,
        lexer=PygmentsLexer(KdLexer) if session.color else None,
        key_bindings=paste.bindings(), input=input, output=output)
    more: PromptSession[str] = PromptSession(input=input, output=output)
    session.pager = Pager(height=lambda: prompt.output.get_size().rows,
                          ask=lambda: _ask_more(more))
    start = ""
    with INTERRUPTS.installed():
        while not session.quit_requested:
            try:
                line = prompt.prompt(session.prompt, default=start, handle_sigint=False)
            except KeyboardInterrupt:
                start = ""
                continue
            except EOFError:
                break
            if paste.lines:
                prompt.app.erase_when_done = False
                start = paste.run(session, prompt.history)
            else:
                start = ""
                run_line(session, line, echo=False)


def _ask_more(more: PromptSession) -> bool:
    try:
        answer = more.prompt("-- More (Enter: next page, q: stop) -- ", handle_sigint=False)
    except (KeyboardInterrupt, EOFError):
        return False
    return answer.strip().lower() != "q"
