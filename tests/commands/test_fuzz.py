"""A grammar-aware fuzzer over every registered command: random and extreme arguments on the
default machine, each line under a timeout, and nothing but the debugger's own words back.

The grammar is read from the registry: each command's syntax string names its slots
(`Address`, `Flags`, `TagString`, `FileName` ...) and its literal options (`-v`, `/t`, `/f`),
so a command registered tomorrow is fuzzed without touching this file.  A line is the command,
then its slots in order, some dropped, some replaced by an extreme value (a number of thousands
of digits, Unicode digits, a long word, quotes, wildcards, control characters), sometimes
followed by `;` and another line.

Two sessions share the work: one on which memory is written (`eb`/`ed`/`ew`/`eq`, so later
display commands walk whatever the writes corrupted) and which never runs, and one on which
the machine runs (`g`, `.reboot`, `.verifier`) and nothing is written.  Corrupting the machine
and then running it is the corruption fuzzer's subject, not this one's.

Left out of the grammar because they legitimately run long or print without bound in the real
debugger too (bounding them is the streaming part of the hardening issue): display ranges
beyond a few KB (`db 0 L?ffffffff`, `dd f8000000 L10000000`, `db 0 ffffffff`), `g` with more
than a few hundred ticks, and `!poolfind` of a tag matching most of the pool with `-x`, which
runs a command for each of thousands of blocks.  Writers (`.dump`, `.logopen`) get file names
inside the test's directory only, and readers (`$<`, `pooltag_file`) no device or FIFO except
where the reader is known to refuse them (`pooltag_file`).
"""
from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commands.dispatch import load_commands
from commands.registry import Command, all_commands
from commands.session import SETTINGS, Session
from commands.testing import run
from kdsim.scenarios import boot
from tests.support import POOLTAG_TXT, peak_mb, resident_mb

SEED = 20240613
TOTAL_LINES = 4000
SCALE = 0.1                      # a busy default machine, small enough that .reboot stays quick
LINE_TIMEOUT = 10.0              # seconds; a line taking longer is a hang
SLOW_COMMANDS = {".reboot": 6, "g": 60}     # at most this many lines (each costs 0.05-0.5 s)
INTERNAL = re.compile(r"internal error", re.IGNORECASE)
MAX_RANGE = 0x400                # display ranges, in elements or bytes
MAX_TICKS = 0x200
WRITERS = {".dump", ".logopen", ".logappend", ".report"}    # their FileName is written

UNICODE_DIGITS = ["\u00b2", "\u0663", "\uff11", "\u09e7", "\U0001d7d9", "\u2167"]
SYMBOLS = ["nt!PoolHitTag", "nt!PoolBigPageTable", "nt!PoolTrackTable", "nt!PoolBigPageTableSize",
           "nt!MmNonPagedPoolStart", "nt!MmPagedPoolStart", "nt!ExpNumberOfPagedPools",
           "nt!PoolTrackTableSize", "nt!KiBugCheckData", "nt!DbgBreakPoint", "PoolHitTag",
           "nt", "myfault", "nt!NoSuchSymbol", "foo!bar", "nt!", "!nt"]
TAGS = ["Irp", "Irp ", "Leak", "MmCm", "File", "Vad", "Ntf?", "CM??", "Mm*", "*", "????", "?",
        "*x*", "A*B*", "Ab?d", "zzzz", "0x20707249", "0x6b61654c", "0x", "0xZZ", "0x-1",
        "I\u00e9rp", "Irp\u00b2", "\"AB C\"", "'Irp'", "Irpxx", "IrpIrp*", "*" * 50 + "p",
        "[ab]", "\\x41", "-", "--", "-tag"]
TYPES = ["_POOL_HEADER", "nt!_POOL_HEADER", "_POOL_TRACKER_TABLE", "nt!_POOL_TRACKER_BIG_PAGES",
         "_POOL_DESCRIPTOR", "nt!_GENERAL_LOOKASIDE", "_EPROCESS", "nt!", "nt!_", "_", "*",
         "nt!_POOL_HEADER*", "NT!_pool_header"]
WORDS = ["", " ", "\t", "x", "myfault.sys", "DrvA.sys", "nt", "Leak", "on", "off", "json", "text",
         "-v", "/v", "-", "/", "//", "--all", "-all", "\"", "\"\"", "\"unterminated", "'",
         "'abcd'", "`", "``", "\\", "%s%n", "{}", "${$arg1}", "@$extret", "@eax", "$", "$$",
         "!", "!!", ".", "..", "..\\..", "\x1b[31mred\x1b[0m", "\x07", "\u202e", "\ufeff",
         "\udcff", "\ud800", "\u00e9t\u00e9", "\u4e2d\u6587", "L", "L?", "L-", "=", "==", "N=V",
         "*", "?"]
MUTATIONS = list("\"';`\\()[]{}<>*?!@$%^&|=+-,./:~#") + ["\x00", "\x1b", "\r", "\n", "\t",
                                                          "\x7f", "\u00a0", "\u00b2"]
DISPLAY_JUNK = ['"', "'", "`", "L", "L?", "nt!NoSuchSymbol", "@eax", "-v", "x!y", "\x1b[0m"]


def _long_words() -> list[str]:
    return ["A" * 5000, "9" * 5000, "0n" + "9" * 5000, "0x" + "f" * 5000, "(" * 70 + "1" + ")" * 70,
            "(" * 300, "-" * 3000 + "1", "poi " * 500 + "0", "1+" * 2000 + "1", "\u00b2" * 2000,
            "*" * 3000, "?" * 3000, " " * 5000 + "x", ";" * 200, "\"" * 201]


@dataclass
class Problem:
    line: str
    what: str

    def __str__(self) -> str:
        shown = self.line if len(self.line) < 160 else self.line[:157] + "..."
        return f"{shown!r}: {self.what!r}"


class Hang(BaseException):
    """Raised by the alarm in the middle of a command; not an Exception, so the dispatcher's
    catch-all cannot turn it into an error line."""


@dataclass
class Places:
    """Addresses and files worth aiming at, found on the machine and in the test's folder."""

    addresses: list[str]
    scripts: list[str]
    readable: list[str]           # files a reader may be given
    writable: list[str]           # names a writer may be given (inside the test's folder)
    pooltag_files: list[str]


# -- the grammar -------------------------------------------------------------------------------
_SLOT = re.compile(r"L\[\?\|-\]|[-/][A-Za-z]+|[A-Za-z][\w!.=]*|\"[^\"]*\"")


@dataclass
class Grammar:
    rng: random.Random
    places: Places
    commands: list[Command] = field(default_factory=list)     # what `;` may chain

    # -- values ----------------------------------------------------------------------------
    def number(self) -> str:
        r = self.rng.random()
        if r < 0.45:
            return self.rng.choice(["0", "1", "2", "3", "4", "7", "8", "f", "10", "80", "100",
                                    "0x80000000", "0n10", "0t17", "0y101", "1`0", "-1", "-0n5",
                                    "ffffffff", "7fffffff", "0xfffffff", "1h"])
        if r < 0.65:
            return format(self.rng.getrandbits(self.rng.choice([4, 8, 16, 32, 64])), "x")
        if r < 0.75:
            return self.rng.choice(UNICODE_DIGITS + ["1" + UNICODE_DIGITS[0], "0x\u0663"])
        if r < 0.85:
            return self.rng.choice(["0n" + "9" * self.rng.randint(19, 40),
                                    "0x" + "f" * self.rng.randint(16, 40),
                                    "ffffffffffffffff", "10000000000000000",
                                    "0y" + "1" * 70, "0t" + "7" * 30, "1" * 25])
        return self.expression()

    def address(self) -> str:
        if self.rng.random() < 0.6:
            return self.rng.choice(self.places.addresses)
        return self.rng.choice([self.number, lambda: self.rng.choice(SYMBOLS),
                                lambda: f"{self.rng.choice(self.places.addresses)}+"
                                        f"{self.rng.randrange(0, 0x2000, 4):x}",
                                lambda: f"poi({self.rng.choice(SYMBOLS)})"])()

    def expression(self) -> str:
        parts = [self.rng.choice([self.rng.choice(SYMBOLS), "1", "ffffffff", "0n10", "'abcd'",
                                  "@eax", "@rcx", "$ra", "poi(nt!PoolHitTag)", "by(0)",
                                  "hi(12345678)", "not 0", "0n" + "1" * 25, "\u00b2"])
                 for _ in range(self.rng.randint(1, 4))]
        ops = ["+", "-", "*", "/", "%", "<<", ">>", ">>>", "&", "|", "^", "==", "!=", " and ",
               " or ", " mod ", " xor ", "<", ">=", ")", "(", "/0", ""]
        text = parts[0]
        for part in parts[1:]:
            text += self.rng.choice(ops) + part
        depth = self.rng.choice([0, 0, 1, 3, 63, 64, 65])
        return "(" * depth + text + ")" * depth

    def word(self) -> str:
        return self.rng.choice(WORDS + SYMBOLS + TAGS)

    def extreme(self) -> str:
        return self.rng.choice(_long_words() + UNICODE_DIGITS + WORDS)

    def display_range(self, start: str) -> str:
        count = self.rng.randint(0, MAX_RANGE)
        return self.rng.choice([f"L{count:x}", f"L?{count:x}", f"L-{count:x}", f"L0n{count}",
                                f"l{count:x}", "L0", "L-0", "L", "L?", f"L{UNICODE_DIGITS[0]}",
                                f"({start})+{count:x}", f"({start})-{count:x}"])   # end address

    def file_for_reading(self) -> str:
        name = self.rng.choice(self.places.scripts + self.places.readable)
        return self.rng.choice([name, f'"{name}"', f" {name}", name + ";.echo after"])

    def file_for_writing(self) -> str:
        name = self.rng.choice(self.places.writable)
        return self.rng.choice([name, f'"{name}"'])

    def slot(self, kind: str) -> str:
        """A value for a placeholder of a syntax string, by what its name says."""
        k = kind.lower()
        if k in ("address", "endaddress"):
            return self.address()
        if k == "expression":
            return self.expression()
        if k in ("tagstring", "tagvalue", "tag"):
            return self.rng.choice(TAGS)
        if k in ("filename",):
            return self.file_for_reading()
        if k == "type":
            return self.rng.choice(TYPES)
        if k in ("extension", "command"):
            return self.rng.choice([c.name for c in self.commands] + ["pool", "kdexts.pool",
                                                                      "!nope", "", "!"])
        if k in ("image", "name"):
            return self.rng.choice(["myfault.sys", "DrvA.sys", "nt", "ntoskrnl.exe", "x" * 300])
        if k in ("comment", "string", "answer", "any", "text", "arg1", "arg2"):
            return self.rng.choice([self.word(), self.extreme(), "Leak", "myfault.sys"])
        return self.number()        # Count, Flags, Options, Depth, Value, Number, Code, Param...

    # -- lines ----------------------------------------------------------------------------
    def line(self, cmd: Command) -> str:
        text = self.command_line(cmd)
        if self.rng.random() < 0.1 and not _bounded(cmd):
            text = self.mutate(text, len(cmd.name))
        if self.rng.random() < 0.08:
            text += self.rng.choice([";", "; ", " ;"]) + self.command_line(
                self.rng.choice(self.commands))
        return text

    def mutate(self, text: str, keep: int) -> str:
        """One character inserted, doubled or removed after the command's name."""
        at = self.rng.randint(keep, len(text))
        return self.rng.choice([
            text[:at] + self.rng.choice(MUTATIONS) + text[at:],
            text[:at] + text[at:at + 8] * 2 + text[at + 8:],
            text[:at] + text[at + 1:],
        ])

    def command_line(self, cmd: Command) -> str:
        special = _SPECIAL.get(cmd.name)
        if special is not None and (cmd.name in _ONLY_SPECIAL or self.rng.random() < 0.7):
            args = special(self)
        else:
            args = " ".join(self.arguments(cmd))
        glue = "" if cmd.name.startswith("$") and self.rng.random() < 0.5 else " "
        return f"{cmd.name}{glue}{args}".rstrip() if args else cmd.name

    def arguments(self, cmd: Command) -> Iterator[str]:
        if _is_display(cmd):                                  # memory display: bounded ranges
            yield from self.display_arguments()
            return
        for slot in _SLOT.findall(cmd.syntax[len(cmd.name):]):
            r = self.rng.random()
            if r < 0.25:
                continue
            if r < 0.35:
                yield self.extreme()
            elif slot.startswith(("-", "/")) or slot[0].islower():
                yield slot                                     # a literal option or keyword
            elif slot.startswith('"'):
                yield slot
            elif slot.lower() == "filename" and cmd.name in WRITERS:
                yield self.file_for_writing()
            elif slot != "L[?|-]":
                yield self.slot(slot.rstrip("."))
        if self.rng.random() < 0.1:
            yield self.rng.choice([self.word(), self.number()])

    def display_arguments(self) -> Iterator[str]:
        if self.rng.random() < 0.1:
            return
        start = self.address()
        yield start
        if self.rng.random() < 0.7:
            yield self.display_range(start)
        if self.rng.random() < 0.1:                # junk that cannot be an end address
            yield self.rng.choice(DISPLAY_JUNK + UNICODE_DIGITS)


def _poolfind(g: Grammar) -> str:
    rng = g.rng
    parts = [rng.choice(TAGS)]
    if rng.random() < 0.4:
        parts.append(rng.choice(["0", "1", "2", "4", "3", "8", "01", "-1", "\u00b2", "0x1"]))
    for option in ("-nonpaged", "-paged", "-small", "-large"):
        if rng.random() < 0.15:
            parts.append(option)
    if rng.random() < 0.2:
        parts += ["-tag", rng.choice(TAGS)]
    if rng.random() < 0.15:            # one command per block: only with tags of few blocks
        parts = [rng.choice(["Leak", "zzzz", "Hack", "0x6b61654c"]), "-x",
                 rng.choice(['"? @$extret"', '"dd @$extret L4"', '"!pool @$extret 2"',
                             '"db @$extret L?8; .echo x"', '"!poolfind Irp"', '"', '""',
                             '"' + "A" * 3000 + '"'])]
    rng.shuffle(parts)
    return " ".join(parts)


def _poolused(g: Grammar) -> str:
    rng = g.rng
    parts = []
    if rng.random() < 0.3:
        parts += rng.choice([["/t", g.number()], [f"/t{g.number()}"], ["/t"], ["/x"], ["/"]])
    if rng.random() < 0.8:
        parts.append(g.number())
        if rng.random() < 0.7:
            parts.append(rng.choice(TAGS + [g.extreme()]))
    return " ".join(parts)


def _settings(g: Grammar) -> str:
    rng = g.rng
    name = rng.choice(list(SETTINGS) + ["nope", "", "RADIX"])
    values = {"radix": ["16", "10", "8", "7", "0n10", "\u00b2"],
              "pooltag_file": g.places.pooltag_files, "color": ["off", "on", "auto"],
              "more": ["on", "off"], "output": ["text", "json"]}
    value = rng.choice(values.get(name, ["classic", "new", "none", ""]) + [g.word()])
    return rng.choice([f"set {name}={value}", f"set {name} = {value}", f"set {name}", "list",
                       "list -v", "help", g.word()])


def _verifier(g: Grammar) -> str:
    rng = g.rng
    return rng.choice(["/flags " + g.number(), "/standard", "/driver " + g.slot("name"),
                       "/all", "/verifystart", "/reset", "/flags", "/driver", g.word(),
                       "/flags 1 /driver myfault.sys", "/standard /all /verifystart"])


def _script_with_args(g: Grammar) -> str:
    args = " ".join(g.rng.choice([g.word(), g.number(), g.extreme()])
                    for _ in range(g.rng.randint(0, 5)))
    return f"{g.file_for_reading()} {args}"


def _dump(g: Grammar) -> str:
    options = [o for o in ("/f", "/m", "/o", "/u", "/c " + g.word()) if g.rng.random() < 0.4]
    return " ".join(options + [g.file_for_writing()])


def _log(g: Grammar) -> str:
    options = [o for o in ("/t", "/u", "/x") if g.rng.random() < 0.3]
    return " ".join(options + [g.file_for_writing()])


def _go(g: Grammar) -> str:
    """Bounded runs only: no argument runs 0n10000 ticks, so it is drawn rarely."""
    return g.rng.choice([f"{g.rng.randint(0, MAX_TICKS):x}"] * 6 + [
        "0", "-1", "0n" + "9" * 30, "²", "zz", "1+1", "(10)", "0x10 junk", "L10", ""])


_SPECIAL: dict[str, Callable[[Grammar], str]] = {
    "g": _go,
    "!poolfind": _poolfind, "!poolused": _poolused, ".settings": _settings,
    ".verifier": _verifier, "$$>a<": _script_with_args, ".dump": _dump,
    ".logopen": _log, ".logappend": _log,
    ".more": lambda g: g.rng.choice(["on", "off", "", "maybe"]),
    ".output": lambda g: g.rng.choice(["json", "text", "", "xml"]),
    ".hint": lambda g: g.rng.choice(["", "1", "0", "99", "\u00b2", "9" * 5000, "-1"]),
}


_ONLY_SPECIAL = {"g"}                     # the registry's syntax would allow unbounded runs


def _is_display(cmd: Command) -> bool:
    return cmd.name[:1] == "d" and "L[?|-]Count" in cmd.syntax


def _writes_memory(cmd: Command) -> bool:
    """`eb`, `ed` ...: their syntax is `Address Value [Value ...]`."""
    return cmd.syntax.split()[1:3] == ["Address", "Value"]


def _bounded(cmd: Command) -> bool:
    """Lines whose numbers decide how long they run: never mutated, so a doubled digit or
    an inserted operator cannot turn a bounded range or run into an unbounded one."""
    return cmd.name in _ONLY_SPECIAL or _is_display(cmd)


# -- the harness -------------------------------------------------------------------------------
def _on_alarm(signum: int, frame: object) -> None:
    raise Hang


def run_bounded(session: Session, line: str) -> tuple[str | None, str | None]:
    """(output, problem) of one line run in the main thread under LINE_TIMEOUT."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, LINE_TIMEOUT)
    try:
        out = run(session, line)
    except Hang:
        return None, f"no answer within {LINE_TIMEOUT:.0f} s"
    except BaseException as exc:          # anything escaping the dispatcher is a bug
        return None, f"{type(exc).__name__} escaped: {exc!s:.200}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    session.quit_requested = False        # `q` ends a session; the fuzzer goes on
    if INTERNAL.search(out):
        return out, next(l for l in out.splitlines() if INTERNAL.search(l))[:300]
    return out, None


def _addresses(session: Session) -> list[str]:
    found = []
    for tag in ("Irp", "MmCm"):
        found += [line[1:].split()[0] for line in run(session, f"!poolfind {tag}").splitlines()
                  if line.startswith("*")]
    for name in SYMBOLS[:9]:
        out = run(session, f"? {name}")
        if out.startswith("Evaluate expression:"):
            found.append(out.split("= ")[1].strip())
    found = sorted(set(found))[:40]
    return found + ["0", "80000000", "fffff000", "ffffffff", "f8000000", "f8000ffc"]


def _places(session: Session, folder: Path) -> Places:
    scripts = folder / "scripts"
    scripts.mkdir()
    (scripts / "plain.txt").write_text(".echo plain\n? 1+1\n!vm\n")
    (scripts / "args.txt").write_text(".echo ${$arg1} ${$arg2} ${$arg" + "9" * 5000 + "}\n"
                                      "? ${$arg1}\n!poolfind ${$arg1}\n")
    (scripts / "self.txt").write_text(f".echo again\n$$>< {scripts / 'self.txt'}\n")
    (scripts / "utf16.txt").write_bytes(".echo utf16\r\n".encode("utf-16"))
    (scripts / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (scripts / "empty.txt").write_bytes(b"")
    (scripts / "with space.txt").write_text(".echo spaced\n")
    (scripts / "q.txt").write_text(".echo before q\nq\n.echo after q\n")
    tags = folder / "tags"
    tags.mkdir()
    (tags / "pooltag.txt").write_text("Irp  - x.sys - fuzzed IRPs\nAb?? - y.sys - w\n")
    (tags / "long.txt").write_bytes(b"Ab -" + b" " * 120_000 + b"x\r\n")
    (tags / "odd16.txt").write_bytes("Irp  - a - b".encode("utf-16") + b"\x00")
    os.mkfifo(tags / "fifo")
    out = folder / "out"
    out.mkdir()
    return Places(
        addresses=_addresses(session),
        scripts=[str(p) for p in sorted(scripts.iterdir())],
        readable=[str(folder / "absent.txt"), str(folder), "", "nul\0name", "\"\"", "x\ud800",
                  str(scripts / "with space.txt")],
        writable=[str(out / "a.dmp"), str(out / "b.log"), str(out / "with space.log"),
                  str(out / "no" / "such" / "dir.log"), str(out), str(out / "x\0y"), "",
                  str(out / "bad\udcff.log"), str(out / "bad\ud800.log")],
        pooltag_files=[str(tags / n) for n in ("pooltag.txt", "long.txt", "odd16.txt", "fifo")]
        + ["/dev/zero", str(folder), "none", "", "nul\0name", "~/nope.txt",
           str(POOLTAG_TXT), "x\ud800"],
    )


def _plan(rng: random.Random, commands: list[Command]) -> list[Command]:
    """TOTAL_LINES commands, every one at least a few times, slow ones capped."""
    plan: list[Command] = []
    per = TOTAL_LINES // len(commands)
    for cmd in commands:
        plan += [cmd] * min(per, SLOW_COMMANDS.get(cmd.name, per))
    fast = [c for c in commands if c.name not in SLOW_COMMANDS]
    plan += [rng.choice(fast) for _ in range(TOTAL_LINES - len(plan))]
    rng.shuffle(plan)
    return plan


def test_fuzz_every_command(tmp_path, monkeypatch):
    if not hasattr(signal, "setitimer"):
        pytest.skip("needs SIGALRM")
    monkeypatch.delenv("KDSIM_DEBUG", raising=False)
    monkeypatch.delenv("KDSIM_POOLTAG", raising=False)
    monkeypatch.chdir(tmp_path)           # .logopen /t and relative names land here
    load_commands()
    commands = all_commands()
    rng = random.Random(SEED)
    writes = Session(boot(scale=SCALE).target())       # memory written, never run
    runs = Session(boot(scale=SCALE).target())         # run, never written
    places = _places(writes, tmp_path)
    readers = [c for c in commands if not c.target_action and not _writes_memory(c)]
    grammar = {True: Grammar(rng, places, readers + [c for c in commands if _writes_memory(c)]),
               False: Grammar(rng, places, readers)}
    problems: list[Problem] = []
    plan = _plan(rng, commands)
    before_mb = resident_mb()
    started = time.perf_counter()
    for cmd in plan:
        on_writes = _writes_memory(cmd) or (not cmd.target_action and rng.random() < 0.5)
        session = writes if on_writes else runs
        line = grammar[on_writes].line(cmd)
        _, problem = run_bounded(session, line)
        if problem is not None:
            problems.append(Problem(line, problem))
    for session in (writes, runs):
        session.close_log(announce=False)
    elapsed = time.perf_counter() - started
    assert len(plan) >= 2000 and {c.name for c in plan} == {c.name for c in commands}
    assert not problems, (f"{len(problems)} of {len(plan)} lines failed in {elapsed:.0f} s:\n"
                          + "\n".join(str(p) for p in problems[:40]))
    # the process's peak less what it held before: the test's growth, or more (never less)
    assert peak_mb() - before_mb < 500


# -- what the fuzzer found, kept as plain tests ------------------------------------------------
def test_undecodable_input_byte_in_an_open_log(tmp_path):
    """A byte that was not UTF-8 arrives as a lone surrogate; the log escapes it instead of
    failing every later write (and `.logclose`) with UnicodeEncodeError."""
    session = Session(boot(scale=SCALE).target())
    log = tmp_path / "x.log"
    assert run(session, f".logopen {log}; .echo a\udcffb; .logclose") == (
        f"Opened log file '{log}'\na\\xffb\nClosing open log file {log}\n")   # sanitize.py
    assert "a\\xffb" in log.read_text()


def test_undecodable_byte_in_a_dump_comment(tmp_path):
    session = Session(boot(scale=SCALE).target())
    out = run(session, f".dump /c a\udcffb {tmp_path / 'c.dmp'}")
    assert "Dump successfully written" in out and "nternal" not in out
