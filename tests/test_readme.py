"""The README says what the product does: its generated tables match the registries, and its
quick-start test command is the one CI runs."""
import subprocess
import sys

from commands.reference import BLOCKS, readme_block
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_generated_blocks_are_current():
    """Generated in a fresh interpreter: other tests register commands and scenarios of their
    own in this one."""
    for name in BLOCKS:
        fresh = subprocess.run([sys.executable, "-m", "commands.reference", "--block", name],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
        assert readme_block(README, name) == fresh.rstrip("\n"), \
            f"README {name} block is stale: run python -m commands.reference --write"


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = README[README.index("## Quick start"):README.index("## A session")]
    commands = [line for line in quick.splitlines()
                if line and not line.startswith(("```", "#")) and "&&" in line]
    assert commands == ["pip install -e . && kdsim",
                        "pip install -e '.[test]' && python -m pytest && mypy"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_the_session_shown_is_what_kdsim_prints():
    """The README's session is a real one: replaying its commands gives its text."""
    block = README[README.index("## A session"):README.index("## Using it")]
    shown = block[block.index("```text\n") + 8:block.rindex("```")].splitlines()
    invocation, transcript = shown[0], shown[1:]
    args = invocation.removeprefix("$ kdsim ").split()
    commands = [line.split("> ", 1)[1] for line in transcript if line.startswith("0: kd> ")]
    result = subprocess.run([sys.executable, "-m", "commands", *args], cwd=ROOT,
                            input="\n".join(commands) + "\n", capture_output=True, text=True,
                            env={"NO_COLOR": "1", "PATH": "", "KDSIM_CACHE": "off"}, check=True)
    assert result.stdout.splitlines() == transcript


def test_the_python_api_example_runs():
    """The README's API example, run as written in a fresh interpreter."""
    block = README[README.index("## Python API"):README.index("## Scenarios and labs")]
    code = block[block.index("```python\n") + 10:block.index("```", block.index("```python") + 9)]
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": "", "KDSIM_CACHE": "off"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert " Leak " in result.stdout
