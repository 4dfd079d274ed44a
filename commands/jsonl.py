"""JSON Lines (`kdsim --json`, `.output jsonl`): one JSON object per command, for programs.

Every command, whatever it prints, becomes exactly one line:

    {"schema": 1, "command": "!pool 8a1b2c30", "result": {...}}     a result object
    {"schema": 1, "command": ".lab", "text": "..."}                  text (messages, .lab, .echo)
    {"schema": 1, "command": "bogus", "error": "Syntax error in 'bogus'"}

A result object may also carry "text" (what the command printed beside its result) and an
error may carry the "text" printed before it.  Unlike `.output json`, which prints a result's
fields as they are for a human to read, the fields are spelled for programs: one rule per field
name (`HEX`, `TAGS`, anything else is a number), decided here once so that every result type,
today's and tomorrow's, spells an address the same way — and tests/commands/test_render.py
holds every integer field of every result type to a decision (`undecided`).

- `HEX`: addresses, pointers, codes, flags and values read from memory are "0x…" strings
  (lower-case hex): they go past 2^53, which JSON numbers cannot carry for every reader.
- `TAGS`: a pool tag stored as an integer is its 4 characters (the ULONG's bytes, little
  endian, with bit 31, the protected bit, cleared); a tag already text stays as it is.
- Everything else (sizes, counts, indexes, ticks, levels) is a JSON integer.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from kdsim.layouts import tag_from_ulong

from .render import Rows

SCHEMA = 1

HEX = frozenset({
    "address", "page", "child", "ret", "site", "va", "data", "start", "end", "caller",
    "entry", "process", "thread", "value", "values", "params", "code", "flags", "args",
    "table", "frames", "contents", "output", "stopped_at",
    "base", "kernel_base", "module_list", "before", "after", "matches", "hits",
    "bad_link", "bad_thread_link", "peb", "dir_base", "object_table", "teb", "win32",
    "device_map", "token", "stack_init", "stack_current", "stack_base", "stack_limit",
    "type_object", "header", "directory",
})
TAGS = frozenset({"tag"})
NUMBERS = frozenset({
    "unit", "offset", "enum", "decimal", "irql", "index", "type", "current_depth",
    "max_depth", "size", "total_allocates", "allocate_hits", "total_frees", "free_hits",
    "previous_size", "pool_index", "block_size", "pool_type", "last_size", "found",
    "expected", "number", "tick", "allocs", "frees", "outstanding", "used", "large",
    "outstanding_diff", "used_diff", "new_blocks", "new_bytes", "freed_blocks",
    "freed_bytes", "kept", "backtrace", "old_bytes", "new_count", "old_count",
    "unseen_blocks", "unseen_bytes", "lost_records", "log_length", "tracker_blocks", "level",
    "fields", "statistics", "current_allocations", "current_bytes", "peak_allocations",
    "peak_bytes", "length", "quantity", "nbytes", "current_kb", "free_kb", "minimum_kb",
    "maximum_kb", "physical", "available", "resident_available", "locked_io",
    "free_system_ptes", "free_nonpaged_ptes", "free_special_nonpaged", "modified",
    "modified_pagefile", "nonpaged_usage", "nonpaged_max", "paged_pools", "paged_max",
    "session_commit", "shared_commit", "special_pool", "process_commit", "kernel_stacks",
    "paged_commit", "driver_commit", "committed", "commit_limit", "pool_failures", "tag_pages", "tag_bytes", "holders", "allocated", "free", "cached", "pinned", "blocks", "tags", "cell", "pages",
    "depth", "processors", "uptime_ms", "bits", "session", "pid", "parent", "handles", "tid",
    "quota_paged", "quota_nonpaged", "working_set", "peak_working_set", "virtual_mb",
    "peak_virtual_mb", "page_faults", "base_priority", "commit", "wait_start", "ticks",
    "context_switches", "priority", "pointers", "session_id", "paged_pool", "nonpaged",
    "total_private",
})


def hex_text(value: int) -> str:
    return f"{value:#x}" if value >= 0 else f"-{-value:#x}"


def to_data(value: Any, spell: str = "") -> Any:
    """A result as plain JSON data with the spellings above; `spell` is the rule of the field
    the value sits in (hex, tag or none), applied to every integer inside it down to the next
    result object.  Rows are read here, so a fault while reading them is the command's error."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        if spell == "hex":
            return hex_text(value)
        return tag_from_ulong(value) if spell == "tag" else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name), rule(f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k, spell): to_data(v, spell) for k, v in value.items()}
    if isinstance(value, (list, tuple, Rows)):
        return [to_data(item, spell) for item in value]
    raise TypeError(f"{type(value).__name__} is not a result field JSON can print")


def rule(field: str) -> str:
    """How the integers of a field are spelled: "hex", "tag" or "" (numbers)."""
    if field in HEX:
        return "hex"
    return "tag" if field in TAGS else ""


def _key(key: Any, spell: str) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return hex_text(key) if spell == "hex" else str(key)
    return str(key)


def envelope(command: str, *, result: Any = None, text: str = "",
             error: str | None = None, has_result: bool = False) -> dict[str, Any]:
    """The object of one command (`result` already plain data)."""
    record: dict[str, Any] = {"schema": SCHEMA, "command": command}
    if error is not None:
        record["error"] = error
        if text:
            record["text"] = text
    elif has_result:
        record["result"] = result
        if text:
            record["text"] = text
    else:
        record["text"] = text
    return record


def line(record: dict[str, Any]) -> str:
    """One record as its line: compact, ASCII only (a lone surrogate from undecodable input
    is escaped, never an encoding error)."""
    return json.dumps(record, separators=(",", ":")) + "\n"


def error_text(pieces: list[str]) -> str:
    """kd's error lines without the caret and the padding that place it under the echoed
    command (JSON Lines has no echo)."""
    lines = [piece.strip() for text in pieces for piece in text.splitlines()]
    return "\n".join(line.removeprefix("^ ") for line in lines if line)
