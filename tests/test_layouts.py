"""The construct declarations and the allocator's hand-packed bits describe the same layout."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdsim.arch import get_arch
from kdsim.layouts import HeaderCodec, field_offsets, layouts_for
from kdsim.machine import Machine
from kdsim.pool import NONPAGED, PAGED
from kdsim.tracker import tag_key


@pytest.mark.parametrize("arch", ["x86", "x64"])
@given(data=st.data())
def test_header_codec_agrees_with_construct(arch, data):
    a = get_arch(arch)
    lim_size, lim_field = 1 << a.size_bits, 1 << a.index_bits
    prev = data.draw(st.integers(0, lim_size - 1))
    index = data.draw(st.integers(0, lim_field - 1))
    bs = data.draw(st.integers(0, lim_size - 1))
    ptype = data.draw(st.integers(0, lim_field - 1))
    tag = data.draw(st.integers(0, 0xFFFFFFFF))
    codec = HeaderCodec(a)
    ulong1 = codec.pack(prev, index, bs, ptype)
    raw = ulong1.to_bytes(4, "little") + tag.to_bytes(4, "little")
    if arch == "x64":
        raw += bytes(8)
    parsed = layouts_for(a).pool_header.parse(raw)
    fields = parsed.Ulong1 if arch == "x86" else parsed
    assert (fields.PreviousSize, fields.PoolIndex, fields.BlockSize, fields.PoolType) == \
        (prev, index, bs, ptype)
    assert parsed.PoolTag == tag
    assert codec.unpack(ulong1) == (prev, index, bs, ptype)
    # and the other way round: construct builds the bytes the codec packs
    assert layouts_for(a).pool_header.build(parsed) == raw


@pytest.mark.parametrize("arch,sizes", [
    ("x86", {"pool_header": 8, "tracker": 0x1C, "big_page": 0x10, "descriptor": 0x1140,
             "lookaside": 0x48}),
    ("x64", {"pool_header": 16, "tracker": 0x28, "big_page": 0x18, "descriptor": 0x1048,
             "lookaside": 0x60}),
])
def test_structure_sizes_match_windows_7(arch, sizes):
    L = layouts_for(get_arch(arch))
    for name, size in sizes.items():
        assert getattr(L, name).sizeof() == size, name


def test_known_offsets():
    x86, x64 = layouts_for(get_arch("x86")), layouts_for(get_arch("x64"))
    assert field_offsets(x86.descriptor)["ListHeads"] == 0x140
    assert field_offsets(x86.descriptor)["TotalPages"] == 0xC0
    assert field_offsets(x64.descriptor)["ListHeads"] == 0x48
    assert field_offsets(x64.tracker)["PagedBytes"] == 0x20
    assert field_offsets(x64.big_page)["NumberOfBytes"] == 0x10


@pytest.mark.parametrize("arch", ["x86", "x64"])
def test_allocator_headers_parse_with_construct(arch):
    m = Machine(get_arch(arch), seed=1)
    L = layouts_for(m.arch)
    for ptype, size, tag in ((NONPAGED, 0x38, "Even"), (PAGED, 0x200, "CM31")):
        p = m.pool.allocate(ptype, size, tag_key(tag))
        h = L.pool_header.parse(m.memory.read(p - m.arch.block, m.arch.block))
        f = h.Ulong1 if arch == "x86" else h
        assert f.BlockSize == m.arch.block_size(size)
        assert f.PoolType == (ptype | 2)
        assert h.PoolTag == tag_key(tag)


@pytest.mark.parametrize("arch", ["x86", "x64"])
@pytest.mark.parametrize("struct_name, names", [
    ("tracker", ("NonPagedAllocs", "NonPagedFrees", "NonPagedBytes")),
    ("tracker", ("PagedAllocs", "PagedFrees", "PagedBytes")),
    ("lookaside", ("Next", "ListDepth", "Sequence", "Depth", "MaximumDepth",
                   "TotalAllocates", "AllocateHits", "TotalFrees", "FreeHits")),
])
def test_field_runs_read_what_construct_reads(arch, struct_name, names):
    import os
    from kdsim.layouts import field_run
    con = getattr(layouts_for(get_arch(arch)), struct_name)
    raw = os.urandom(con.sizeof())
    parsed = con.parse(raw)
    run, index = field_run(con, names)
    first = min(field_offsets(con)[n] for n in names)
    values = run.unpack_from(raw, first)
    assert {n: values[i] for n, i in index.items()} == {n: parsed[n] for n in names}
