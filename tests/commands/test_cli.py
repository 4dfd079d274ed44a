"""The `kdsim` entry point: arguments, exit status, the piped transcript, never a traceback."""
from __future__ import annotations

import io
import json
import os
import select
import shlex
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
    (["-cf", "/dev/zero"], "cannot read '/dev/zero': not a regular file"),
    (["-cf", "."], "cannot read '.': not a regular file"),
    (["-cf", ""], "argument -cf: expected a file name"),
    (["-cf", " \t"], "argument -cf: expected a file name"),
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


def test_a_fifo_as_cf_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = kdsim("-cf", str(fifo), code=BARE)         # kdsim() times out after 60 s
    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr.decode() == f"kdsim: cannot read '{fifo}': not a regular file (see kdsim -h)\n"


def test_undecodable_bytes_echoed_with_a_log_open(tmp_path):
    log = tmp_path / "x.log"
    result = kdsim("-c", os.fsdecode(b".logopen " + os.fsencode(log) + b"; .echo \xff; .echo on"),
                   code=BARE)
    assert (result.returncode, result.stderr) == (0, b"")
    # the byte is printed as the sanitiser shows an undecodable byte, on screen and in the log
    assert result.stdout.decode().endswith("\n\\xff\non\n")
    assert log.read_text() == f"Opened log file '{log}'\n\\xff\non\n"


@pytest.mark.parametrize("shell", [
    "{kdsim} >&-; echo status=$?",                                # started with stdout closed
    "{kdsim} | true; echo status=${{PIPESTATUS[0]}}",              # nobody reads
    "yes .help | {kdsim} | head -1 >/dev/null; echo status=${{PIPESTATUS[1]}}",  # closed midway
])
def test_closed_stdout_ends_quietly_with_status_0(shell):
    kdsim_line = shlex.join([sys.executable, "-c", BARE, "-c", ".echo one; .echo two"])
    result = subprocess.run(["bash", "-c", shell.format(kdsim=kdsim_line)],
                            stdin=subprocess.DEVNULL, capture_output=True, cwd=ROOT, timeout=60)
    assert (result.stdout, result.stderr) == (b"status=0\n", b"")


def test_a_failing_stdout_is_one_line_and_status_1():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-c", BARE, "-c", ".echo one"], stdout=full,
                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                                timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode() == "kdsim: cannot write the output: No space left on device\n"


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


@pytest.mark.parametrize("args, reason", [
    (["-z", ""], "-z needs a file name"),
    (["-z", " \t"], "-z needs a file name"),
    (["--resume", "  "], "--resume needs a file name"),
    (["--resume", ""], "--resume needs a file name"),
    (["--seed", str(1 << 64)], f"--seed must be a 64-bit number, not {1 << 64}"),
])
def test_empty_paths_and_impossible_seeds_open_nothing(monkeypatch, capsys, args, reason):
    """`-z ''` used to open the live default machine, and a seed beyond 64 bits to fail when
    the machine was saved."""
    _fake_machine(monkeypatch, lambda **options: pytest.fail("a machine was opened"))
    assert _main(monkeypatch, capsys, *args) == (2, "", f"kdsim: {reason} (see kdsim -h)\n")


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


LAB_EXAMPLE = ROOT / "tests" / "kdsim" / "labs" / "netflt.toml"


def test_a_lab_file_opens_and_its_solution_runs_through_cf(tmp_path):
    """The issue's example, saved anywhere: its solution through -cf, `.check netflt` right
    and Nflt first in !poolused 2."""
    lab = tmp_path / "netflt.toml"
    lab.write_text(LAB_EXAMPLE.read_text())
    solution = tmp_path / "netflt.cmd"
    solution.write_text("!vm\n!poolused /t5 2\n!poolfind Nflt\n.check netflt\n")
    result = kdsim("--lab", str(lab), "-cf", str(solution))
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    used = out.split("!poolused /t5 2\n", 1)[1].splitlines()
    assert used[5].split()[0] == "Nflt"
    assert "Right: netflt is the driver that leaks nonpaged pool." in out


def test_a_hostile_lab_file_is_one_line_and_status_2_and_nothing_boots(tmp_path, capsys):
    lab = tmp_path / "netflt.toml"
    lab.write_text(LAB_EXAMPLE.read_text().replace("sizes = [0x180, 0x1c0]",
                                                   "sizes = [0x100000]"))
    for args in (["--lab", str(lab)], ["--check-lab", str(lab)]):
        assert cli.main(args) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (f"{lab}:26: driver.allocates.sizes: 0x100000 is above the "
                                "small-pool limit (large = true for big-pool blocks)\n")


def test_check_lab_checks_without_booting(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(control, "open_machine", None)       # booting would fail
    assert cli.main(["--check-lab", str(LAB_EXAMPLE)]) == 0
    assert capsys.readouterr().out == (f"{LAB_EXAMPLE}: a lab, 'Where did nonpaged pool go?' "
                                       "(1 driver(s), 3 hint(s))\n")


def test_scenario_finds_lab_files_in_kdsim_labs(tmp_path, monkeypatch):
    (tmp_path / "netflt2.toml").write_text(LAB_EXAMPLE.read_text())
    monkeypatch.setenv("KDSIM_LABS", str(tmp_path))
    from kdsim.scenarios import get_scenario, list_scenarios
    assert get_scenario("netflt2").lab.answers == ("netflt", "netflt.sys")
    assert ("netflt2", "Where did nonpaged pool go?: find the driver that leaks nonpaged "
            "pool") in list_scenarios()
    assert cli.main(["--lab", str(LAB_EXAMPLE), "--scenario", "leak"]) == 2


def test_the_opening_banner_names_the_lab_seed_and_scale():
    target = control.open_machine(scenario="tour", seed=5, scale=0.25, use_cache=False)
    assert cli.opening_banner("A tour of the pool", "tour", target, 0.25) == (
        "Lab: A tour of the pool (scenario tour, seed 5, scale 0.25).  Type .lab to start.")


def test_each_lab_has_its_own_history_file(monkeypatch, tmp_path):
    from commands.repl import history_path
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history_path() == tmp_path / "kdsim" / "history"
    assert history_path("leak") == tmp_path / "kdsim" / "history-leak"
    assert history_path("../x") == tmp_path / "kdsim" / "history-.._x"
    assert cli.build_parser().parse_args(["--no-history"]).no_history


# -- command files that report, -c/-cf order, --safe, --json -----------------------------------
def test_c_and_cf_run_in_the_order_given(tmp_path):
    first = tmp_path / "first.txt"
    first.write_text(".echo from file\n")
    result = kdsim("-c", ".echo before", "-cf", str(first), "-c", ".echo after", code=BARE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ("kd> .echo before\nbefore\nkd> .echo from file\n"
                                      "from file\nkd> .echo after\nafter\n")


def test_a_failing_cf_line_names_file_and_line_and_fails_the_batch(tmp_path):
    path = tmp_path / "lab.txt"
    path.write_text(".echo one\nbogus\n.echo three\n")
    result = kdsim("-cf", str(path), "-c", ".echo later", stdin=".echo piped\n", code=BARE)
    out = result.stdout.decode()
    assert result.returncode == 1
    assert out.endswith(f"kd> bogus\n    ^ Syntax error in 'bogus'\n"
                        f"{path}:2: bogus: Syntax error in 'bogus'\n")
    assert "three" not in out and "later" not in out and "piped" not in out
    going = kdsim("--keep-going", "-cf", str(path), "-c", ".echo later", code=BARE)
    out = going.stdout.decode()
    assert going.returncode == 1
    assert f"{path}:2: bogus: Syntax error in 'bogus'\n" in out
    assert out.endswith("kd> .echo three\nthree\nkd> .echo later\nlater\n")


def test_a_failing_c_line_fails_the_batch():
    result = kdsim("-c", "bogus; .echo never", code=BARE)
    assert result.returncode == 1
    assert "\nnever" not in result.stdout.decode()


WRITERS = (".logopen {d}/log.txt", ".logappend {d}/log.txt", ".dump /f {d}/m.dmp",
           ".snapshot {d}/s.kdsnap")


def test_safe_mode_refuses_every_writing_command_and_goes_on(tmp_path):
    typed = [line.format(d=tmp_path) for line in WRITERS] + [
        ".settings set safe=off", ".echo still here"]
    result = kdsim("--safe", stdin="\n".join(typed) + "\n", code=BARE)
    out = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr
    refused = [line for line in out if "refused: safe mode" in line]
    assert [line.split()[0] for line in refused] == [".logopen", ".logappend", ".dump",
                                                     ".snapshot"]
    assert "Safe mode stays on for the rest of this session" in out
    assert out[-1] == "still here"
    assert list(tmp_path.iterdir()) == []
    late = kdsim("-c", f".settings set safe=on; .logopen {tmp_path}/late.txt", code=BARE)
    assert "refused" in late.stdout.decode() and list(tmp_path.iterdir()) == []


def test_json_mode_prints_only_json_lines_on_stdout(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(".echo in file\nbogus\n")
    result = kdsim("--json", "-c", "? 1; .echo hi", "-cf", str(path), code=BARE)
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert records == [
        {"schema": 1, "command": "? 1", "result": {"value": "0x1", "decimal": 1,
                                                   "hex": "00000001"}},
        {"schema": 1, "command": ".echo hi", "text": "hi\n"},
        {"schema": 1, "command": ".echo in file", "text": "in file\n"},
        {"schema": 1, "command": "bogus", "error": "Syntax error in 'bogus'"}]
    assert result.stderr.decode() == f"{path}:2: bogus: Syntax error in 'bogus'\n"
    assert result.returncode == 1


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


# -- --answers: a class's answer key ----------------------------------------------------------
def test_answers_prints_a_class_key_without_booting(capsys, monkeypatch):
    monkeypatch.setattr(control, "open_machine", None)       # booting would fail
    assert cli.main(["--answers", "double-free", "--seeds", "1-3,7"]) == 0
    assert capsys.readouterr().out == (
        "Answer key: Freed twice (scenario double-free): the driver that frees a block twice\n"
        "seed  answer (.check accepts any of them)\n"
        "   1  dkcache | dkcache.sys\n"
        "   2  volsnapx | volsnapx.sys\n"
        "   3  stflt | stflt.sys\n"
        "   7  dkcache | dkcache.sys\n")
    assert cli.main(["--answers", str(LAB_EXAMPLE), "--seeds", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "   0  netflt | netflt.sys"


@pytest.mark.parametrize("args,message", [
    (["--answers", "leak", "--seeds", "3-1"], "--seeds: 3-1 runs backwards"),
    (["--answers", "leak", "--seeds", "x"], "--seeds: 'x' is not a seed (N) or a range (N-M)"),
    (["--answers", "leak", "--seeds", "0-99999"], "--seeds: more than 10000 seeds"),
    (["--seeds", "1-3"], "--seeds goes with --answers LAB"),
    (["--answers", "default"], "scenario 'default' has no lab"),
    (["--answers", "nope"], "unknown scenario 'nope'"),
])
def test_bad_answers_arguments_are_one_line_and_status_2(capsys, args, message):
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"kdsim: {message}")
    assert captured.err.count("\n") == 1


def test_answers_of_a_hostile_lab_file_is_its_one_line(tmp_path, capsys):
    lab = tmp_path / "netflt.toml"
    lab.write_text(LAB_EXAMPLE.read_text().replace('pool = "nonpaged"', 'pool = "nonpagd"'))
    assert cli.main(["--answers", str(lab)]) == 2
    assert capsys.readouterr().err.startswith(f"{lab}:25: driver.allocates.pool: ")
