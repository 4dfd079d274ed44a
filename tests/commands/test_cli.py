"""The `kdsim` entry point: arguments, exit status, the piped transcript, never a traceback."""
from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest

from commands import cli
from commands.registry import lookup
from commands.render import RESET, STYLES
from commands.testing import blank_target
from kdsim import control
from tests.support import ROOT

# kdsim with a bare hand-built target instead of the simulated machine.
BARE = ("import sys, commands.cli as c; from commands.testing import blank_target; "
        "c.open_machine = lambda args: blank_target(args.arch or 'x86'); "
        "sys.exit(c.main(sys.argv[1:]))")


def kdsim(*args: str, stdin: str | bytes = b"", module: str = "commands.cli",
          code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", module]
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([*command, *args], input=data, capture_output=True, cwd=ROOT,
                          timeout=60)


def test_version_both_ways():
    for module in ("commands.cli", "commands"):
        result = kdsim("--version", module=module)
        assert result.returncode == 0
        assert result.stdout.decode() == f"kdsim {cli.version()}\n"
    assert cli.version() == "0.1.0"


@pytest.mark.parametrize("content", [None, b"", b"\x89PNG\r\n\x1a\n" + bytes(64), b"KDSIMDMP"])
def test_unusable_dump_gives_one_line_and_status_1(tmp_path, content):
    path = tmp_path / "crash.dmp"
    if content is not None:
        path.write_bytes(content)
    result = kdsim("-z", str(path))
    assert result.returncode == 1
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.startswith(f"kdsim: Could not open dump file [{path}], ") and err.count("\n") == 1


def test_help():
    result = kdsim("-h")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("usage: kdsim [-h] [--arch {x86,x64}]")


@pytest.mark.parametrize("args, reason", [
    (["--arch", "arm"],
     "argument --arch: invalid choice: 'arm' (choose from 'x86', 'x64')"),
    (["--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["-c"], "argument -c: expected one argument"),
    (["-cf", "no-such-file.txt"], "cannot read 'no-such-file.txt': No such file or directory"),
])
def test_unusable_arguments_give_one_line_and_status_2(args, reason):
    result = kdsim(*args)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == f"kdsim: {reason} (see kdsim -h)\n"


def test_piped_session_reads_like_a_kd_log(tmp_path):
    startup = tmp_path / "startup.txt"
    startup.write_text(".echo from file\n")
    result = kdsim("-cf", str(startup), "-c", ".echo first; .echo second", code=BARE,
                   stdin=".echo piped\nbogus\nq\n.echo never\n")
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.decode() == (
        "kd> .echo from file\nfrom file\n"
        "kd> .echo first; .echo second\nfirst\nsecond\n"
        "kd> .echo piped\npiped\n"
        "kd> bogus\n    ^ Syntax error in 'bogus'\n"
        "kd> q\nquit:\n")


def test_end_of_input_without_q_and_undecodable_bytes():
    result = kdsim(code=BARE, stdin=b".echo \xff\xfe ok\n!nosuch\n")
    assert result.returncode == 0
    assert result.stdout.decode() == (
        "kd> .echo \ufffd\ufffd ok\n\ufffd\ufffd ok\nkd> !nosuch\nNo export nosuch found\n")


def test_q_in_dash_c_skips_the_input():
    result = kdsim("-c", "q", code=BARE, stdin=".echo never\n")
    assert (result.returncode, result.stdout.decode()) == (0, "kd> q\nquit:\n")


def test_closed_pipe_is_not_an_error():
    script = f"{sys.executable} -c \"{BARE}\" | head -1"
    result = subprocess.run(["bash", "-c", script], input=b".help\n" * 200,
                            capture_output=True, cwd=ROOT, timeout=60)
    assert result.stdout == b"kd> .help\n"
    assert result.stderr == b""


# -- in-process: the lazy machine -------------------------------------------------------------
def _main(monkeypatch, capsys, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def _fake_machine(monkeypatch, create):
    def open_machine(use_cache=True, progress=None, **options):   # the machine's options only
        return create(**options).target()

    monkeypatch.setattr(control, "open_machine", open_machine)


def test_machine_is_created_lazily_with_the_given_options(monkeypatch, capsys):
    seen = {}

    def create(**options):
        seen.update(options)
        target = blank_target(options.get("arch", "x86"), processors=2)
        return types.SimpleNamespace(target=lambda: target)

    _fake_machine(monkeypatch, create)
    status, out, err = _main(monkeypatch, capsys, "--arch", "x64", "--seed", "7",
                             stdin=b".echo hi\n")
    assert (status, out, err) == (0, "0: kd> .echo hi\nhi\n", "")
    assert seen == {"arch": "x64", "seed": 7}


def test_machine_errors(monkeypatch, capsys):
    def refuse(**options):
        raise ValueError("unknown scenario 'nope'")

    _fake_machine(monkeypatch, refuse)
    monkeypatch.setattr(cli, "scenarios", lambda: None)
    assert _main(monkeypatch, capsys, "--scenario", "nope") == (
        2, "", "kdsim: unknown scenario 'nope' (see kdsim -h)\n")
    monkeypatch.setitem(sys.modules, "kdsim.control", None)
    status, out, err = _main(monkeypatch, capsys)
    assert status == 1 and out == ""
    assert err.startswith("kdsim: the simulated machine is not available (")
    assert err.count("\n") == 1


def test_internal_error_is_one_line(monkeypatch, capsys):
    def crash(**options):
        raise RuntimeError("boom")

    _fake_machine(monkeypatch, crash)
    monkeypatch.delenv("KDSIM_DEBUG", raising=False)
    assert _main(monkeypatch, capsys) == (1, "", "kdsim: internal error: RuntimeError: boom\n")


def test_scenarios(monkeypatch, capsys):
    monkeypatch.setattr(control, "list_scenarios",
                        lambda: [("fragmentation", "pool fragmentation (seed case 1)"),
                                 ("leak", "a driver leaks nonpaged pool")])
    assert _main(monkeypatch, capsys, "--list-scenarios") == (0, (
        "fragmentation  pool fragmentation (seed case 1)\n"
        "leak           a driver leaks nonpaged pool\n"), "")
    assert _main(monkeypatch, capsys, "--scenario", "nope") == (
        2, "", "kdsim: unknown scenario 'nope' (see --list-scenarios)\n")


# -- the real machine, once it exists ---------------------------------------------------------
def test_default_machine_end_to_end():
    pytest.importorskip("kdsim.machine")
    result = kdsim(stdin="? 1+1\n.echo done\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = result.stdout.decode()
    assert out.endswith("kd> .echo done\ndone\n")
    from commands.dispatch import load_commands
    load_commands()
    if lookup("?") is not None:
        assert "> ? 1+1\nEvaluate expression: 2 = 0" in out


# -- Ctrl+C on a real terminal ------------------------------------------------------------------
SPIN = textwrap.dedent("""
    import sys, time
    import commands.cli as c
    from commands.registry import command
    from commands.testing import blank_target
    c.open_machine = lambda args: blank_target("x86")

    @command(".kt_spin")
    def spin(session, args):
        state = [[[]] for _ in range(600000)]  # freed as the break unwinds, as a scan's state
        session.write("spinning\\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pass

    sys.exit(c.main(sys.argv[1:]))
""")


class Terminal:
    """kdsim on a pseudo-terminal: what it shows, and keys typed as a user types them."""

    def __init__(self, fd: int):
        self.fd, self.screen = fd, b""

    def wait_for(self, text: bytes, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.screen.count(text) < count and time.monotonic() < deadline:
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:                                   # the child has exited
                return
            if not data:
                return
            self.screen += data
            if b"\x1b[6n" in data:                            # a cursor position request
                os.write(self.fd, b"\x1b[1;1R")

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)


def _reap(pid: int, timeout: float = 10) -> int:
    """The child's wait status; one that has not exited by then is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("presses", [2, 3])
def test_repeated_ctrl_c_on_a_terminal_breaks_the_command_not_the_session(tmp_path, presses):
    import pty
    pid, fd = pty.fork()
    if pid == 0:                                              # the child: kdsim on a terminal
        os.chdir(ROOT)
        os.environ["XDG_DATA_HOME"] = str(tmp_path)
        os.environ.pop("NO_COLOR", None)            # colour, as most users have it
        os.execv(sys.executable, [sys.executable, "-c", SPIN])
    terminal = Terminal(fd)
    try:
        terminal.wait_for(b"kd>")
        terminal.type(b".kt_spin\r")
        terminal.wait_for(b"spinning")
        time.sleep(0.1)
        for _ in range(presses):
            terminal.type(b"\x03")
            time.sleep(0.01)
        terminal.wait_for(f"{STYLES['error']}^C{RESET}".encode())
        time.sleep(0.6)                                       # the presses have all landed
        terminal.type(b".echo after\r")
        terminal.wait_for(b"after\r\n")
        terminal.type(b"q\r")
        terminal.wait_for(b"quit:")
        terminal.wait_for(b"<never>", timeout=5)              # read until kdsim exits
    finally:
        status = _reap(pid)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, terminal.screen
    assert b"after\r\n" in terminal.screen and b"Traceback" not in terminal.screen


@pytest.mark.parametrize("presses", [2, 3])
def test_repeated_ctrl_c_in_a_piped_session(presses):
    """`cmds | kdsim`: the first SIGINT breaks the command, the others are absorbed, and the
    session reads on to the end of its input (status 0)."""
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(b".kt_spin; .echo dropped\n")
        child.stdin.flush()
        assert child.stdout.readline() == b"kd> .kt_spin; .echo dropped\n"
        assert child.stdout.readline() == b"spinning\n"
        time.sleep(0.05)
        for _ in range(presses):
            child.send_signal(signal.SIGINT)
            time.sleep(0.01)
        time.sleep(0.1)
        out, err = child.communicate(b".echo after\n", timeout=60)
    finally:
        child.kill()
        child.wait()
    assert (child.returncode, err) == (0, b"")
    assert out == b"^C\nkd> .echo after\nafter\n"
