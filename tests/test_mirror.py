"""The tests mirror the code: every module that registers commands has its test file beside the
others of its package, named after it (commands/ext/pool.py: tests/commands/ext/test_pool.py),
so a command's tests are found by its name."""
from __future__ import annotations

from commands.dispatch import load_commands
from commands.registry import all_commands
from tests.support import ROOT


def test_every_command_module_has_its_test_file() -> None:
    load_commands()
    modules = {cmd.func.__module__ for cmd in all_commands()
               if cmd.func.__module__.startswith("commands.")}
    expected = {"tests/{}/test_{}.py".format(*module.replace(".", "/").rsplit("/", 1))
                for module in modules}
    missing = sorted(path for path in expected if not (ROOT / path).is_file())
    assert not missing, "command modules without their test file:\n" + "\n".join(missing)
    assert "tests/commands/ext/test_pool.py" in expected
