"""The bounded construct blocks (kdsim/bounded.py) write exactly the bytes construct's own
VarInt, ZigZag, PascalString and PrefixedArray write, read them back, and refuse what a file
cannot hold before reading it, in time linear in what they read."""
from __future__ import annotations

import io
import time

import pytest
from construct import (
    Int32ul, Int64ul, PascalString, PrefixedArray, Struct, VarInt, ZigZag,
)
from hypothesis import given
from hypothesis import strategies as st

from kdsim.bounded import (
    Budget, Counted, Number, Packed, Record, Refused, Signed, Text, least, remaining,
)

U64 = st.integers(0, (1 << 64) - 1)
S64 = st.integers(-(1 << 63), (1 << 63) - 1)
NAME = Text(64, "name")


@given(U64)
def test_number_is_varint(value):
    assert Number.build(value) == VarInt.build(value)
    assert Number.parse(VarInt.build(value)) == value


@given(S64)
def test_signed_is_zigzag(value):
    assert Signed.build(value) == ZigZag.build(value)
    assert Signed.parse(ZigZag.build(value)) == value


@given(st.text(max_size=20))
def test_text_is_a_pascal_string(text):
    assert NAME.build(text) == PascalString(VarInt, "utf8").build(text)
    assert NAME.parse(NAME.build(text)) == text


@given(st.lists(st.tuples(st.text(max_size=8), U64), max_size=20))
def test_counted_records_are_a_prefixed_array(items):
    ours = Counted(Record("name" / NAME, "address" / Int64ul), "symbols", 100)
    theirs = PrefixedArray(VarInt, Struct("name" / PascalString(VarInt, "utf8"),
                                          "address" / Int64ul))
    values = [dict(name=n, address=a) for n, a in items]
    assert ours.build(values) == theirs.build(values)
    assert [(v.name, v.address) for v in ours.parse(theirs.build(values))] == items


@given(st.lists(st.integers(0, (1 << 32) - 1), max_size=50))
def test_packed_is_a_prefixed_array(values):
    ours = Packed("I", "values", 100, count=Int32ul)
    assert ours.build(values) == PrefixedArray(Int32ul, Int32ul).build(values)
    assert list(ours.parse(ours.build(values))) == values


def refusal(con, data: bytes, **params) -> str:
    with pytest.raises(Refused) as caught:
        con.parse_stream(io.BytesIO(data), **params)
    return caught.value.reason


def test_a_number_wider_than_64_bits_is_refused_after_ten_bytes():
    assert refusal(Number, b"\x80" * 9 + b"\x02") == "a number wider than 64 bits"
    assert Number.parse(b"\xff" * 9 + b"\x01") == (1 << 64) - 1
    started = time.perf_counter()
    assert refusal(Number, b"\x80" * 1_000_000 + b"\x01") == "a number wider than 64 bits"
    assert time.perf_counter() - started < 0.1
    with pytest.raises(Exception):
        Number.build(1 << 64)
    with pytest.raises(Exception):
        Signed.build(1 << 63)


def test_a_name_longer_than_its_maximum_or_not_utf8():
    assert refusal(NAME, VarInt.build(1 << 40)) == \
        "a name of 1099511627776 bytes, longer than 64"
    assert refusal(NAME, b"\x02\xff\xfe") == "a name that is not UTF-8"
    with pytest.raises(Exception):
        NAME.build("x" * 65)


def test_counts_beyond_the_maximum_the_bytes_left_or_the_budget():
    symbols = Counted(Record("name" / NAME, "address" / Int64ul), "symbols", 1000)
    assert refusal(symbols, VarInt.build(1001)) == "1001 symbols, more than 1000"
    # nine bytes at least per symbol: 100 cannot fit in 899 bytes
    assert refusal(symbols, VarInt.build(100) + bytes(899)) == \
        "100 symbols cannot fit in the 899 bytes left"
    one = VarInt.build(1) + NAME.build("a") + bytes(8)
    budget = Budget(symbols=1)
    symbols.parse_stream(io.BytesIO(one), budget=budget)
    assert refusal(symbols, one, budget=budget) == "more than 1 symbols"
    assert refusal(Packed("Q", "pages", 10), VarInt.build(11)) == "11 pages, more than 10"


def test_least_and_remaining():
    assert least(Struct("name" / NAME, "address" / Int64ul, "n" / Int32ul)) == 13
    assert least(Counted(NAME, "names", 5, count=Int32ul)) == 4
    stream = io.BytesIO(b"abcdef")
    stream.read(2)
    assert remaining(stream) == 4 and stream.tell() == 2
