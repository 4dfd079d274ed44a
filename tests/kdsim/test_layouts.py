"""The profiles: each profile's construct declarations and the hand-packed codecs the hot paths
use describe the same layout, the declarations have Windows 7's sizes and offsets, and every
layout constant and helper is defined in one place."""
from __future__ import annotations

import ast
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdsim.arch import ARCHES, get_arch
from kdsim.layouts import (
    PAGE_SIZE, PROFILES, HeaderCodec, declared_slots, field_offsets, field_run, get_profile,
    profile_for, struct_of, tag_from_ulong, tag_to_ulong,
)
from kdsim.layouts import constants
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from tests.support import ROOT

PROFILE_NAMES = sorted(PROFILES)


@pytest.mark.parametrize("name", PROFILE_NAMES)
@given(data=st.data())
def test_header_codec_agrees_with_construct(name, data):
    profile = get_profile(name)
    codec = profile.codec
    prev = data.draw(st.integers(0, codec.size_mask))
    index = data.draw(st.integers(0, codec.field_mask))
    bs = data.draw(st.integers(0, codec.size_mask))
    ptype = data.draw(st.integers(0, codec.field_mask))
    tag = data.draw(st.integers(0, 0xFFFFFFFF))
    ulong1 = codec.pack(prev, index, bs, ptype)
    raw = ulong1.to_bytes(4, "little") + tag.to_bytes(4, "little")
    raw += bytes(profile.pool_header.sizeof() - len(raw))
    parsed = profile.pool_header.parse(raw)
    fields = parsed.Ulong1 if "Ulong1" in parsed else parsed
    assert (fields.PreviousSize, fields.PoolIndex, fields.BlockSize, fields.PoolType) == \
        (prev, index, bs, ptype)
    assert parsed.PoolTag == tag
    assert codec.unpack(ulong1) == (prev, index, bs, ptype)
    # and the other way round: construct builds the bytes the codec packs
    assert profile.pool_header.build(parsed) == raw


@pytest.mark.parametrize("name, widths", [
    ("win7sp1-x86", (9, 7)), ("win7sp1-x64", (8, 8))])
def test_header_codec_is_derived_from_the_declaration(name, widths):
    profile = get_profile(name)
    codec = profile.codec
    size_bits, field_bits = widths
    assert (codec.size_mask, codec.field_mask) == ((1 << size_bits) - 1, (1 << field_bits) - 1)
    assert (codec.idx_shift, codec.bs_shift, codec.type_shift) == \
        (size_bits, 16, 16 + size_bits)
    slots = declared_slots(profile.pool_header)
    assert slots["PoolType"].bit == codec.type_shift


def test_header_codec_refuses_a_layout_the_hot_path_cannot_pack():
    from construct import Int8ul, Int16ul, Struct
    moved = Struct("PreviousSize" / Int8ul, "PoolIndex" / Int8ul, "PoolType" / Int8ul,
                   "BlockSize" / Int8ul)                 # BlockSize not at bit 16
    with pytest.raises(ValueError):
        HeaderCodec(moved)
    wide = Struct("PreviousSize" / Int16ul, "BlockSize" / Int16ul, "PoolIndex" / Int8ul,
                  "PoolType" / Int8ul)                   # PoolType beyond the first ULONG
    with pytest.raises(ValueError):
        HeaderCodec(wide)


@pytest.mark.parametrize("name,sizes", [
    ("win7sp1-x86", {"pool_header": 8, "tracker": 0x1C, "big_page": 0x10, "descriptor": 0x1140,
                     "lookaside": 0x48, "pool_trace": 0x40, "special_header": 8,
                     "kprcb": 0x3500, "stack_frame": 0x18}),
    ("win7sp1-x64", {"pool_header": 16, "tracker": 0x28, "big_page": 0x18, "descriptor": 0x1048,
                     "lookaside": 0x60, "pool_trace": 0x80, "special_header": 16,
                     "kprcb": 0x4D00, "stack_frame": 0x30}),
])
def test_structure_sizes_match_windows_7(name, sizes):
    profile = get_profile(name)
    for struct_name, size in sizes.items():
        assert getattr(profile, struct_name).sizeof() == size, struct_name


def test_known_offsets():
    x86, x64 = get_profile("win7sp1-x86"), get_profile("win7sp1-x64")
    assert field_offsets(x86.descriptor)["ListHeads"] == 0x140
    assert field_offsets(x86.descriptor)["TotalPages"] == 0xC0
    assert field_offsets(x64.descriptor)["ListHeads"] == 0x48
    assert field_offsets(x64.tracker)["PagedBytes"] == 0x20
    assert field_offsets(x64.big_page)["NumberOfBytes"] == 0x10
    # KPRCB: the context frame the debugger starts a stack from, the lookaside arrays
    assert [x86.offset("kprcb", f) for f in ("CurrentThread", "Ebp", "Eip", "Esp")] == \
        [0x4, 0xCC, 0xD0, 0xDC]
    assert [x64.offset("kprcb", f) for f in ("CurrentThread", "Rsp", "Rbp", "Rip")] == \
        [0x8, 0x1B8, 0x1C0, 0x218]
    assert [x86.offset("kprcb", f) for f in ("PPNPagedLookasideList", "PPPagedLookasideList")] \
        == [0x5A0, 0x6A0]
    assert [x64.offset("kprcb", f) for f in ("PPNPagedLookasideList", "PPPagedLookasideList")] \
        == [0x880, 0xA80]
    assert x64.offset("driver_entry", "BaseName.Buffer") == \
        x64.offset("driver_entry", "BaseName") + 8


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profile_agrees_with_its_arch(name):
    profile = get_profile(name)
    arch = profile.arch
    assert profile_for(arch) is profile
    assert profile.pool_header.sizeof() == arch.block
    assert profile.list_heads == PAGE_SIZE // arch.block
    assert set(profile.context_registers) <= set(field_offsets(profile.kprcb))
    assert profile.stack_frame.sizeof() == (2 + constants.FRAME_ARGS) * arch.ptr_size


def test_every_arch_has_a_profile_and_names_are_checked():
    assert sorted(profile_for(a).name for a in ARCHES.values()) == PROFILE_NAMES
    with pytest.raises(ValueError, match="unknown profile 'win10-x64'"):
        get_profile("win10-x64")


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_allocator_headers_parse_with_construct(arch):
    m = Machine(get_arch(arch), seed=1)
    profile = profile_for(m.arch)
    for ptype, size, tag in ((NONPAGED, 0x38, "Even"), (PAGED, 0x200, "CM31")):
        p = m.pool.allocate(ptype, size, tag_to_ulong(tag))
        h = profile.pool_header.parse(m.memory.read(p - m.arch.block, m.arch.block))
        f = h.Ulong1 if arch == "x86" else h
        assert f.BlockSize == m.arch.block_size(size)
        assert f.PoolType == (ptype | 2)
        assert h.PoolTag == tag_to_ulong(tag)


@pytest.mark.parametrize("name", PROFILE_NAMES)
@pytest.mark.parametrize("struct_name, names", [
    ("tracker", ("NonPagedAllocs", "NonPagedFrees", "NonPagedBytes")),
    ("tracker", ("PagedAllocs", "PagedFrees", "PagedBytes")),
    ("lookaside", ("Next", "ListDepth", "Sequence", "Depth", "MaximumDepth",
                   "TotalAllocates", "AllocateHits", "TotalFrees", "FreeHits")),
])
def test_field_runs_read_what_construct_reads(name, struct_name, names):
    con = getattr(get_profile(name), struct_name)
    raw = os.urandom(con.sizeof())
    parsed = con.parse(raw)
    run, index = field_run(con, names)
    first = min(field_offsets(con)[n] for n in names)
    values = run.unpack_from(raw, first)
    assert {n: values[i] for n, i in index.items()} == {n: parsed[n] for n in names}


@pytest.mark.parametrize("name", PROFILE_NAMES)
@pytest.mark.parametrize("struct_name", ["tracker", "big_page", "lookaside", "pool_trace",
                                         "pool_entry", "special_header"])
def test_table_formats_read_what_construct_reads(name, struct_name):
    con = getattr(get_profile(name), struct_name)
    raw = os.urandom(con.sizeof())
    parsed = con.parse(raw)
    fmt = struct_of(con)
    assert fmt.size == con.sizeof()
    offsets = field_offsets(con)
    named = [sub for sub in con.subcons if sub.name]
    for sub, value in zip(named, fmt.unpack(raw)):
        if isinstance(value, bytes):        # arrays and nested structures: their bytes
            at = offsets[sub.name]
            assert value == raw[at:at + sub.sizeof()], sub.name
        else:
            assert value == parsed[sub.name], sub.name


@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=6))
def test_tag_conversions_round_trip(text):
    key = tag_to_ulong(text)
    shown = text[:4].ljust(4)
    assert key == int.from_bytes(shown.encode("latin-1"), "little")
    # the protected bit (the top bit of the fourth byte) is not part of the tag
    assert tag_from_ulong(key) == shown[:3] + chr(ord(shown[3]) & 0x7F)
    assert tag_from_ulong(key | constants.PROTECTED_POOL) == tag_from_ulong(key)


def test_tag_ulong_is_little_endian():
    assert tag_to_ulong("Irp") == 0x20707249
    assert tag_from_ulong(0x20707249 | constants.PROTECTED_POOL) == "Irp "


# -- one definition of each ------------------------------------------------------------------------
PACKAGES = ("kdsim", "commands", "pooltag")
# Names the layout facts had before they were gathered here, so that none comes back.
FORMER_NAMES = {"SIZE_MASK", "FREE_MARK", "BIG_FREE", "LOOKASIDE_SIZES", "POOL_LISTS",
                "PRCB_OFFSETS", "PRCB_SIZE", "KPRCB", "KPRCB_X86", "KPRCB_X64",
                "CONTEXT_REGISTERS", "ROUTINES", "BREAK_FRAMES", "LAYOUTS", "VERIFIER_LAYOUTS",
                "OBJECT_SIZE", "BODY_OFFSET"}
SHARED_HELPERS = {"tag_to_ulong", "tag_from_ulong", "tag_key", "tag_text", "field_offsets",
                  "field_run", "struct_of", "declared_slots", "stack_frame", "layouts_for",
                  "verifier_layouts_for", "profile_for"}


def _module_definitions() -> dict[str, list[str]]:
    """Module-level names (assigned, functions, classes) -> the files defining them."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            rel = str(path.relative_to(ROOT))
            for node in tree.body:
                names: list[str] = []
                if isinstance(node, ast.Assign):
                    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names = [node.target.id]
                elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names = [node.name]
                for name in names:
                    found.setdefault(name, []).append(rel)
    return found


def test_each_layout_constant_is_defined_once():
    defined = _module_definitions()
    shared = [name for name in vars(constants) if name.isupper()]
    assert {"PAGE_SIZE", "PAGE_SHIFT", "PAGE_MASK", "PROTECTED_POOL", "SPECIAL_SIZE_MASK",
            "QUOTA", "POOL_SMALL_LISTS"} <= set(shared)
    for name in shared:
        assert defined[name] == ["kdsim/layouts/constants.py"], name
    # every name the layouts package defines (declarations, helpers) is defined there only
    for name, files in defined.items():
        if any(f.startswith("kdsim/layouts/") for f in files) and not name.startswith("_"):
            assert len(files) == 1, (name, files)
    for name in FORMER_NAMES:
        assert all(f.startswith("kdsim/layouts/") for f in defined.get(name, [])), \
            (name, defined[name])


def test_each_shared_helper_is_defined_once():
    defined = _module_definitions()
    for name in SHARED_HELPERS:
        assert len(defined.get(name, [])) <= 1, (name, defined[name])
    assert defined["tag_to_ulong"] == ["kdsim/layouts/tags.py"]
    assert "tag_key" not in defined and "tag_text" not in defined


def test_commands_read_nt_globals_through_the_target():
    """`Target.global_ptr` is the one way to read the pointer at nt!X."""
    by_hand = re.compile(r"read_ptr\((self\.)?(target\.)?_?(symbol|resolve)\([^()]*\)\)")
    found = [f"{path.relative_to(ROOT)}:{n}"
             for path in sorted((ROOT / "commands").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)]
    assert found == []


def test_no_table_is_keyed_by_architecture_name():
    """Per-arch facts are profile fields; only the arch registry and the simulated machines'
    memory sizes (a machine description, not a layout) are keyed by arch name."""
    keyed = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict) and {"x86", "x64"} <= {
                        k.value for k in node.keys if isinstance(k, ast.Constant)}:
                    keyed.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [k.split(":")[0] for k in keyed] == ["kdsim/arch.py", "kdsim/mm.py"], keyed


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_the_context_frame_agrees_with_the_kprcb(name):
    """_KPRCB names the instruction, stack and frame pointers of the _CONTEXT that
    ProcessorState.ContextFrame holds: both declarations put them at the same offsets."""
    profile = get_profile(name)
    context = field_offsets(profile.context)
    for register in profile.context_registers:
        assert profile.offset("kprcb", register) == profile.context_frame + context[register]
    assert profile.context_frame + profile.context.sizeof() <= \
        profile.offset("kprcb", "PPNPagedLookasideList")
    assert set(profile.bugcheck_registers) <= set(context)


def test_context_sizes_and_offsets_match_windows_7():
    x86, x64 = get_profile("win7sp1-x86"), get_profile("win7sp1-x64")
    assert (x86.context.sizeof(), x64.context.sizeof()) == (0x2CC, 0x4D0)
    assert [field_offsets(x86.context)[f] for f in ("SegGs", "Edi", "Eax", "Eip", "EFlags")] \
        == [0x8C, 0x9C, 0xB0, 0xB8, 0xC0]
    assert [field_offsets(x64.context)[f] for f in ("ContextFlags", "SegCs", "EFlags", "Rax",
                                                    "R8", "Rip", "FltSave")] \
        == [0x30, 0x38, 0x44, 0x78, 0xB8, 0xF8, 0x100]
    # what a stopped kernel processor holds by default: CONTEXT_FULL, kernel selectors
    built = x64.context.parse(x64.context.build({}))
    assert (built.SegCs, built.SegSs, built.EFlags, built.ContextFlags) == \
        (0x10, 0x18, 0x246, 0x10000B)
