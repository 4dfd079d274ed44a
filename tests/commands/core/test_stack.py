"""`k`, `kb`, `kn` and `.bugcheck` on a stopped machine: the stack the stop left in memory,
in both architectures' layouts."""
from __future__ import annotations

from commands.session import Session
from commands.testing import run
from tests.support import double_free


def test_the_stop_is_recorded_with_its_stack_in_memory() -> None:
    m = double_free("x86")
    s = Session(m.target())
    assert run(s, ".bugcheck") == ("Bugcheck code 000000C2\n"
                                   "Arguments 00000007 00001297 00000000 84435008\n")
    assert run(s, "k") == """\
ChildEBP RetAddr  
a03ffae0 82a8f61c nt!RtlpBreakWithStatusInstruction
a03ffb30 82a9029b nt!KiBugCheckDebugBreak+0x1c
a03ffb80 82a8f01e nt!KeBugCheck2+0x68b
a03ffbd0 82bb8de1 nt!KeBugCheckEx+0x1e
a03ffc20 8e712c10 nt!ExFreePoolWithTag+0x1b1
a03ffcc0 82be1063 DrvB+0x2c10
a03ffd10 00000000 nt!IofCallDriver+0x63
"""
    assert run(s, "kn 2") == (" # ChildEBP RetAddr  \n"
                              "00 a03ffae0 82a8f61c nt!RtlpBreakWithStatusInstruction\n"
                              "01 a03ffb30 82a9029b nt!KiBugCheckDebugBreak+0x1c\n")
    assert run(s, "kb 5").splitlines()[4] == ("a03ffbd0 82bb8de1 000000c2 00000007 00001297 "
                                              "nt!KeBugCheckEx+0x1e")
    assert run(s, "kb").splitlines()[0] == "ChildEBP RetAddr  Args to Child              "


def test_x64_stack_layouts() -> None:
    m = double_free("x64")
    s = Session(m.target())
    assert run(s, ".bugcheck") == ("Bugcheck code 000000C2\nArguments 00000000`00000007 "
                                   "00000000`00001297 00000000`00000000 fffffa80`00c35010\n")
    lines = run(s, "k").splitlines()
    assert lines[0] == "Child-SP          RetAddr           Call Site"
    assert lines[4] == "fffff880`05dffdf0 fffff800`015b33b0 nt!KeBugCheckEx+0x104"
    kb = run(s, "kb").splitlines()
    assert kb[0] == ("Child-SP          RetAddr           : Args to Child" + " " * 59
                     + ": Call Site")
    assert kb[4] == ("fffff880`05dffdf0 fffff800`015b33b0 : 00000000`000000c2 00000000`00000007 "
                     "00000000`00001297 00000000`00000000 : nt!KeBugCheckEx+0x104")
