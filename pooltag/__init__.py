"""The pool tag database: a parser for the real pooltag.txt format, a built-in list describing
the simulator's tags in the project's own words, lookup with wildcards, and the description
texts the commands print.

Point the debugger at a real pooltag.txt with the session setting or the environment
variable KDSIM_POOLTAG; its entries take precedence over the built-in ones.
"""
from .builtin import BUILTIN
from .db import ENV_VAR, TagDatabase, check_file
from .describe import pool_description, poolused_description
from .parser import ParsedFile, ParseWarning, PoolTagEntry, parse_bytes, parse_file, parse_text
from .tags import (PROTECTED_POOL, TAG_LEN, TagLike, display_tag, normalize_tag, printable,
                   tag_from_ulong, tag_matches, tag_to_ulong)

__all__ = [
    "BUILTIN", "ENV_VAR", "PROTECTED_POOL", "TAG_LEN", "ParseWarning", "ParsedFile",
    "PoolTagEntry", "TagDatabase", "TagLike", "check_file", "display_tag", "normalize_tag",
    "parse_bytes", "parse_file", "parse_text", "pool_description", "poolused_description",
    "printable", "tag_from_ulong", "tag_matches", "tag_to_ulong",
]
