"""Tag lookup: sources, precedence, wildcards, tag forms, the built-in list."""
from __future__ import annotations

import os
from difflib import SequenceMatcher
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import pooltag.db
from pooltag import (BUILTIN, ENV_VAR, PROTECTED_POOL, TagDatabase, display_tag, normalize_tag,
                     tag_from_ulong, tag_matches, tag_to_ulong)
from pooltag.parser import parse_file

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str, name: str = "pooltag.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", "\r\n").encode() + b"\x1a")
    return path


# --- tag forms -----------------------------------------------------------------------------

def test_ulong_is_little_endian_memory_order():
    assert tag_to_ulong("Irp ") == 0x20707249
    assert tag_to_ulong("Irp") == 0x20707249
    assert tag_from_ulong(0x636F7250) == "Proc"
    assert normalize_tag(b"\x49\x72\x70\x20") == "Irp "


def test_protected_bit_is_stripped_in_every_form():
    protected = 0xEE657645                           # "Even" | PROTECTED_POOL (Win7 object tag)
    assert protected & PROTECTED_POOL
    assert normalize_tag(protected) == "Even"
    assert normalize_tag(protected.to_bytes(4, "little")) == "Even"
    assert normalize_tag("Eve\xee") == "Even"


def test_bad_tag_text():
    with pytest.raises(ValueError):
        normalize_tag("Irpxx")
    with pytest.raises(ValueError):
        normalize_tag(b"Irp")


def test_display_tag():
    assert display_tag(b"rx\0\0") == "rx.."
    assert display_tag("Vad") == "Vad "
    assert display_tag(0x2E5A5008) == ".PZ."


@given(st.integers(0, 0xFFFFFFFF))
def test_ulong_round_trip(value):
    tag = normalize_tag(value)
    assert tag_to_ulong(tag) == value & ~PROTECTED_POOL
    assert normalize_tag(tag) == tag


def test_tag_matches():
    assert tag_matches("CM??", "CM31")
    assert tag_matches("CM??", "CMx")                # `?` matches the padding blank too
    assert not tag_matches("CM??", "Cm31") and not tag_matches("CM??", "xCM3")
    assert tag_matches("Mm*", "Mm  ") and tag_matches("Mm*", "MmCm")
    assert tag_matches("Bu* ", "Bug_")               # blanks after `*` are padding
    assert tag_matches("Irp", "Irp ")                # patterns without `*` are padded
    assert not tag_matches("irp", "Irp ")            # case-sensitive
    assert tag_matches("*", "rx\0\0")
    assert tag_matches("[ab]", "[ab]") and not tag_matches("[ab]", "a   ")


# --- built-in database ---------------------------------------------------------------------

SIMULATOR_TAGS = """File Irp Even Thre Proc MmCa Ntfx Vad CM31 MmCm NDpp LSwi ReEv NtFs Io Ntfr CIcr
ObNm Toke Sect SeSd MmSt Mdl Ntff FMfc TcpE AfdE ALPC Key Cont BIG Pool Devi Driv Wait VadS NpFr
FMsl NtFC ObSq Ntfn CcSc EtwG NSIk NbtD SeTd CMVa MmSm MmRe Ntf0 Ntfs PsIm Obtb Port Gh05 Gla5
Usti Wfp Ipng CMDa CMNb FIcs FMfn""".split()

TEACHING_UNKNOWN = ["Leak", "abcd", "Hack", "DrvA", "BBBB", "CcCc", "MFE0", "IoCo"]


def test_builtin_covers_simulator_tags(builtin_db):
    missing = [t for t in SIMULATOR_TAGS if builtin_db.lookup(t) is None]
    assert missing == []


def test_builtin_leaves_teaching_tags_unknown(builtin_db):
    assert [t for t in TEACHING_UNKNOWN if builtin_db.lookup(t) is not None] == []


def test_builtin_entries_of_the_seed_cases_in_our_words(builtin_db):
    """The tags the seed cases print, pinned: our words, the real binary (None where the
    seeds print none)."""
    def pair(tag):
        e = builtin_db.lookup(tag)
        return e.description, e.binary
    assert pair("Irp") == ("I/O request packets (IRPs)", None)
    assert pair("Thre") == ("ETHREAD of each thread, behind its object header", "nt!ps")
    assert pair("Even") == ("Kernel events (KEVENT) behind their object headers", None)
    assert pair("File") == ("FILE_OBJECT of an open file, device or pipe", None)
    assert pair("MmCm") == ("Memory manager: blocks handed out by its contiguous-memory "
                            "allocator", "nt!mm")
    assert pair("NDpp") == ("NDIS packet pools of protocol and miniport drivers", "ndis.sys")
    assert pair("LSwi") == ("Work contexts the SMB1 server preallocates", None)
    assert pair("CM31") == ("Registry data: hive cells, key control blocks and the like", "nt!cm")
    assert pair("CIcr") == ("Code integrity: state kept while image signatures are checked",
                            "ci.dll")
    assert pair("Proc") == ("EPROCESS of each process, behind its object header", "nt!ps")


def test_builtin_is_well_formed():
    tags = [e.tag for e in BUILTIN]
    assert len(tags) == len(set(tags))
    assert all(len(t) == 4 and e.line == 0 and e.description.strip() == e.description != ""
               for t, e in zip(tags, BUILTIN))


# No built-in description may be a near copy of the real file's: difflib's ratio against the
# real description of the same tag stays at most NEAR_COPY.  The rewrite's highest is 0.65
# (MmSd, AcpO), so the guard has a margin of 0.1 and still flags any light edit of a real line
# (changing one word of a five-word description leaves a ratio of about 0.8).
NEAR_COPY = 0.75


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def test_builtin_words_are_our_own_not_the_real_files(pooltag_txt):
    """Compared with the real file's line for the same tag (wildcard lines by their pattern)
    and with what the real file resolves the tag to: never equal, case and blanks aside, and
    never a near copy."""
    real = TagDatabase(pooltag_txt, builtin=False)
    lines: dict[str, list[str]] = {}
    for entry in parse_file(pooltag_txt).entries:
        lines.setdefault(entry.tag, []).append(entry.description)
    copies, near = [], []
    for entry in BUILTIN:
        resolved = real.lookup(entry.tag)
        theirs = lines.get(entry.tag, []) + ([resolved.description] if resolved else [])
        ours = _words(entry.description)
        copies += [entry.tag for t in theirs if _words(t) == ours]
        near += [(entry.tag, round(ratio, 2)) for t in theirs
                 if (ratio := SequenceMatcher(None, ours, _words(t)).ratio()) > NEAR_COPY]
    assert copies == [] and near == []
    assert len(BUILTIN) < len(real.known_tags()) // 10      # the simulator's tags, not the file's


def test_near_copy_guard_catches_a_light_edit():
    """The threshold is not too lax: a real-style line with one word changed trips it."""
    ratio = SequenceMatcher(None, _words("Mm section object prototype ptes"),
                            _words("Mm section object prototype entries")).ratio()
    assert ratio > NEAR_COPY


# --- precedence and wildcards --------------------------------------------------------------

def test_exact_beats_wildcard_and_specific_wildcard_beats_general(builtin_db):
    assert builtin_db.lookup("CMVa").description == "Registry: cached value entries"
    assert builtin_db.lookup("CM25").description == \
        "Registry data: hive cells, key control blocks and the like"
    assert builtin_db.lookup("Gh05").description == "GDI surface (bitmap) objects"  # Gh?5
    assert builtin_db.lookup("Gh04").description == "GDI region objects"            # Gh?4
    assert builtin_db.lookup("Gxyz").description == "Graphics (GDI) allocations of win32k"
    assert builtin_db.lookup("AmlH").description == "ACPI machine language (AML) interpreter"


def test_wildcard_order_within_a_file(tmp_path):
    path = write(tmp_path, "A??? - a - general\nAb?? - a - specific\nAc?? - a - first\n"
                           "A?c? - a - same rank, later\nAbcd - a - exact\nAbcd - a - duplicate\n")
    db = TagDatabase(path, builtin=False)
    assert db.lookup("Abcd").description == "exact"                 # first exact line wins
    assert db.lookup("Abzz").description == "specific"
    assert db.lookup("Accc").description == "first"
    assert db.lookup("Azzz").description == "general"
    assert db.lookup("Bzzz") is None


def test_user_file_overrides_builtin(tmp_path):
    path = write(tmp_path, "Irp  - nt!io - my IRPs\nTh?? - x.sys - wildcard in user file\n"
                           "Leak - leak.sys - now known\n")
    db = TagDatabase(path, environ=NO_ENV)
    assert (db.lookup("Irp").binary, db.lookup("Irp").description) == ("nt!io", "my IRPs")
    assert db.lookup("Thre").description == "wildcard in user file"   # user wildcard first
    assert db.lookup("Leak").binary == "leak.sys"
    assert db.lookup("Proc").binary == "nt!ps"                         # falls back to built-in
    assert db.lookup("Proc") is TagDatabase(environ=NO_ENV).lookup("Proc")
    assert db.user_file == path and db.error is None and db.warnings == ()


def test_env_var_names_the_user_file(tmp_path):
    path = write(tmp_path, "Leak - leak.sys - from env\n")
    db = TagDatabase(environ={ENV_VAR: str(path)})
    assert db.user_file == path and db.lookup("Leak").description == "from env"
    other = write(tmp_path, "Leak - leak.sys - from setting\n", "other.txt")
    assert TagDatabase(other, environ={ENV_VAR: str(path)}).lookup("Leak").description == \
        "from setting"
    assert TagDatabase(environ={ENV_VAR: ""}).user_file is None


def test_env_var_read_from_process_environment(tmp_path, monkeypatch):
    path = write(tmp_path, "Hack - hack.sys - from os.environ\n")
    monkeypatch.setenv(ENV_VAR, str(path))
    assert TagDatabase().lookup("Hack").description == "from os.environ"


def test_unreadable_user_file_falls_back(tmp_path):
    db = TagDatabase(tmp_path / "nope.txt", environ=NO_ENV)
    assert db.error == f"Unable to read pool tag file {tmp_path / 'nope.txt'}: No such file or directory"
    assert db.lookup("Thre").binary == "nt!ps" and db.lookup("Leak") is None
    assert TagDatabase(tmp_path, environ=NO_ENV).error.startswith("Unable to read pool tag file")


def test_warnings_are_reported(tmp_path):
    path = write(tmp_path, "Abcd - a.sys - ok\nthis line is prose\n")
    db = TagDatabase(path, environ=NO_ENV)
    assert [(w.line, w.text) for w in db.warnings] == [(2, "this line is prose")]


def test_lookup_by_value_bytes_and_text_agree(builtin_db):
    entry = builtin_db.lookup("Irp ")
    assert builtin_db.lookup("Irp") is entry
    assert builtin_db.lookup(0x20707249) is entry
    assert builtin_db.lookup(0x20707249 | PROTECTED_POOL) is entry
    assert builtin_db.lookup(b"Irp ") is entry


def test_known_tags(builtin_db, tmp_path):
    tags = builtin_db.known_tags()
    assert tags == sorted(tags) and "Irp " in tags and "Thre" in tags
    assert not any("?" in t or "*" in t for t in tags)
    path = write(tmp_path, "Zzzz - z - z\nZz?? - z - z\n")
    assert "Zzzz" in TagDatabase(path, environ=NO_ENV).known_tags()


def test_file_is_cached_and_reloaded_when_changed(tmp_path, monkeypatch):
    parses = []
    monkeypatch.setattr(pooltag.db, "parse_file", lambda p: parses.append(p) or parse_file(p))
    path = write(tmp_path, "Abcd - a.sys - one\n")
    TagDatabase(path, builtin=False)
    assert TagDatabase(path, builtin=False).lookup("Abcd").description == "one"
    assert len(parses) == 1
    path.write_text("Abcd - a.sys - two, longer\n")
    os.utime(path, ns=(1, 1))
    assert TagDatabase(path, builtin=False).lookup("Abcd").description == "two, longer"
    assert len(parses) == 2
