"""MASM expressions, evaluated the way the real debugger evaluates them (default radix 16).

A word that reads as a number in the current radix is a number, even when it could also be a
symbol (`abcd`, `fa808000`); anything else is a symbol (`nt!PoolHitTag`, `PoolHitTag` with nt
tried first, `myfault` for a module's base); `!abcd` forces a symbol (MASM Numbers and Operators).
Values are 64-bit, as dbgeng keeps them.  On an x86 target a constant from 0x80000000 to
0xFFFFFFFF written without a backtick is sign-extended, and so are addresses, which is why `?`
prints an x86 kernel address as a negative decimal (docs: Sign Extension).  An x64 target does not
extend constants: a real x64 `db ffffac983ca17910-(0xaaaaaaaa*0x18)` dumps ffffac88`3ca17920.

Errors take the debugger's two shapes (errors.py).  Syntax errors quote the text from where
parsing stopped.  Evaluation errors (unknown symbol, register, unreadable memory, division by
zero) quote from the failing operand to the end of the expression, trailing blanks included:
`dd Foo L1` says `Couldn't resolve error at 'Foo '`.  A memory error points at the last token of
the operand read through, so `poi(x)` quotes from its `)`, as dbgeng does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

from kdsim.target import MemoryFault

from .context import current_processor, read_register, register_names
from .errors import (DebuggerError, bad_register, couldnt_resolve, extra_character,
                     memory_access, numeric_missing, syntax_error_at)

if TYPE_CHECKING:  # pragma: no cover
    from kdsim.target import Target

MASK64 = (1 << 64) - 1
_SIGN_EXTEND = 0xFFFFFFFF_00000000
_MAX_NESTING = 64                 # parentheses; deeper input is refused, not a RecursionError

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_!.$`")
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdef"}
# Significant digits of the largest 64-bit value in each base: a number with more overflows
# (and is refused before Python's int() would meet its own digit limit).
_MAX_DIGITS = {2: 64, 8: 22, 10: 20, 16: 16}
_MAX_DECIMAL = 9                  # digits of a small decimal count (`.hint N`, script args)
_PREFIXES = {"x": 16, "n": 10, "t": 8, "y": 2}
_READS = {"by": 1, "wo": 2, "dwo": 4, "qwo": 8}
_UNARY_WORDS = frozenset({"not", "hi", "low", "poi", *_READS})
_BINARY_WORDS = {"and": "&", "xor": "^", "or": "|", "mod": "%"}
# Longest first, so `>>>` is not read as `>>` then `>`.
_OPERATORS = (">>>", "<<", ">>", "<=", ">=", "==", "!=", "*", "/", "%", "+", "-", "<", ">", "=",
              "&", "^", "|")
_PRECEDENCE = {"*": 7, "/": 7, "%": 7, "+": 6, "-": 6, "<<": 5, ">>": 5, ">>>": 5,
               "==": 4, "=": 4, "!=": 4, "<": 4, ">": 4, "<=": 4, ">=": 4,
               "&": 3, "^": 2, "|": 1}
# Characters that can only continue an expression: a number is missing before them.
_OPERATOR_CHARS = frozenset("*/%&|^<>=)")

# Register names kd reads without `@` when no symbol has the name: those of the context
# (commands/context.py) and the control registers, which the simulated stop does not save.
_CONTROL_REGISTERS = {4: frozenset("cr0 cr2 cr3 cr4".split()),
                      8: frozenset("cr0 cr2 cr3 cr4 cr8".split())}


def divide_by_zero(rest: str) -> DebuggerError:
    return DebuggerError(f"Divide by zero error at '{rest or '<EOL>'}'")


def overflow(rest: str) -> DebuggerError:
    return DebuggerError(f"Overflow error at '{rest or '<EOL>'}'")


class Leading(NamedTuple):
    """An expression at the start of an argument string and what follows it."""

    value: int        # masked to the target's pointer width: an address or a count
    rest: str         # the text after the expression, leading blanks removed
    end: int          # offset of `rest` in the text
    value64: int      # the 64-bit value, for `?`, `.formats` and `eq`


def evaluate(text: str, target: "Target", radix: int = 16, *, offset: int = 0) -> int:
    """The whole of `text` as one expression, as an address (masked to the pointer width).

    `offset` is where `text` starts inside the command's arguments, so a caret error lands
    under the right character."""
    return evaluate64(text, target, radix, offset=offset) & target.arch.ptr_mask


def evaluate64(text: str, target: "Target", radix: int = 16, *, offset: int = 0) -> int:
    """The whole of `text` as one expression, 64-bit and sign-extended as `?` shows it."""
    parser = _Parser(text, target, radix)
    value = parser.expression()
    if parser.pos < len(text):
        raise extra_character(offset + parser.pos)
    return value


def parse_leading(text: str, target: "Target", radix: int = 16) -> Leading:
    """The expression at the start of `text` and the rest (`db addr L20`, `!pool addr 2`).

    Blanks may surround binary operators (`addr + 8` is one expression), so an expression ends
    where the next token cannot continue it: `L20`, a second number, a flag."""
    parser = _Parser(text, target, radix)
    value = parser.expression()
    return Leading(value & target.arch.ptr_mask, text[parser.pos:], parser.pos, value)


def address_and_number(text: str, target: "Target", radix: int = 16) -> tuple[int, int]:
    """`Address [Number]` arguments (`!pool addr flags`, `!poolval addr level`); 0 for what
    is missing."""
    if not text.strip():
        return 0, 0
    lead = parse_leading(text, target, radix)
    number = evaluate(lead.rest, target, radix, offset=lead.end) if lead.rest.strip() else 0
    return lead.value, number


def sign_extend32(value: int) -> int:
    """A 32-bit value as dbgeng widens it to 64 bits on an x86 target (constants, pointers)."""
    return value | _SIGN_EXTEND if 0x80000000 <= value <= 0xFFFFFFFF else value


def decimal(text: str) -> int | None:
    """A small count written in ASCII decimal digits (`.hint 2`, `${$arg3}`), or None.

    Python's int() and str.isdigit() also take other scripts' digits (`²`, `٣`), which the
    debugger does not; a count longer than _MAX_DECIMAL digits is no count either."""
    digits = text.lstrip("0") or text[-1:]
    if not text or len(digits) > _MAX_DECIMAL or not _all_in(text, _DIGITS[10]):
        return None
    return int(digits)


def parse_number(word: str, radix: int) -> tuple[int, bool] | None:
    """A number token as (value, written with a backtick), or None if `word` is not one.

    Prefixes 0x/0n/0t/0y override the radix, a prefix alone is 0, an `h` suffix means hex,
    backticks may separate digits but not lead.  Only ASCII digits are digits.  A value
    beyond 64 bits comes back as MASK64 + 1 (the caller's overflow), however long."""
    if not word or word[0] == "`":
        return None
    backtick = "`" in word
    digits = word.replace("`", "").lower()
    base = radix
    if len(digits) >= 2 and digits[0] == "0" and digits[1] in _PREFIXES:
        base, digits = _PREFIXES[digits[1]], digits[2:]
        if not digits:
            return 0, backtick
    elif len(digits) > 1 and digits[-1] == "h" and _all_in(digits[:-1], _DIGITS[16]):
        base, digits = 16, digits[:-1]
    if not digits or not _all_in(digits, _DIGITS[base]):
        return None
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS[base]:
        return MASK64 + 1, backtick
    return int(significant or "0", base), backtick


def _all_in(text: str, allowed: str) -> bool:
    return all(ch in allowed for ch in text)


class _Parser:
    """Recursive descent with precedence climbing over the text, evaluating as it goes.

    The first evaluation error is remembered and parsing goes on to find where the expression
    ends, which is where the error's quote ends; a later syntax error still reports the
    evaluation error, since dbgeng meets that one first."""

    def __init__(self, text: str, target: "Target", radix: int):
        self.text = text
        self.target = target
        self.radix = radix
        self.pos = 0
        self.last = 0                      # start of the last operand token consumed
        self.depth = 0
        self.fault: tuple[Callable[[str], DebuggerError], int] | None = None
        size = target.arch.ptr_size
        self.registers = _CONTROL_REGISTERS[size] | register_names(target.arch).keys()

    # -- driver ----------------------------------------------------------------------------
    def expression(self) -> int:
        value = self.binary(1)
        self.skip()
        if self.fault is not None:
            make, at = self.fault
            raise make(self.text[at:self.pos])
        return value

    def fail(self, make: Callable[[str], DebuggerError], at: int) -> int:
        if self.fault is None:
            self.fault = (make, at)
        return 0

    def syntax(self, make: Callable[[str], DebuggerError] = syntax_error_at) -> DebuggerError:
        if self.fault is not None:
            first, at = self.fault
            return first(self.text[at:])
        return make(self.text[self.pos:])

    # -- lexing ----------------------------------------------------------------------------
    def skip(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        self.pos = pos

    def word_at(self, pos: int) -> str:
        end = pos
        while end < len(self.text) and self.text[end] in _WORD_CHARS:
            end += 1
        return self.text[pos:end]

    def operator(self) -> str | None:
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                return op
        word = self.word_at(self.pos).lower()
        return word if word in _BINARY_WORDS else None

    # -- grammar ---------------------------------------------------------------------------
    def binary(self, min_precedence: int) -> int:
        left = self.unary()
        while True:
            self.skip()
            op = self.operator()
            if op is None:
                return left
            symbol = _BINARY_WORDS.get(op, op)
            precedence = _PRECEDENCE[symbol]
            if precedence < min_precedence:
                return left
            self.pos += len(op)
            self.skip()
            right_at = self.pos
            right = self.binary(precedence + 1)
            left = self.apply(symbol, left, right, right_at)

    def unary(self) -> int:
        ops: list[str] = []
        while True:
            self.skip()
            if self.text.startswith(("+", "-"), self.pos):
                ops.append(self.text[self.pos])
                self.pos += 1
                continue
            word = self.word_at(self.pos)
            if word.lower() in _UNARY_WORDS:
                ops.append(word.lower())
                self.pos += len(word)
                continue
            break
        value = self.primary()
        for op in reversed(ops):
            value = self.apply_unary(op, value)
        return value

    def primary(self) -> int:
        self.skip()
        start = self.pos
        if start >= len(self.text):
            raise self.syntax(numeric_missing)
        ch = self.text[start]
        if ch == "(":
            return self.parenthesised()
        if ch == "'":
            return self.character()
        if ch == "@":
            name = self.word_at(start + 1)
            self.pos = start + 1 + len(name)
            self.last = start
            return self.register(name, start)
        if ch in _WORD_CHARS:
            word = self.word_at(start)
            self.pos = start + len(word)
            self.last = start
            return self.word(word, start)
        if ch in _OPERATOR_CHARS:
            raise self.syntax(numeric_missing)
        raise self.syntax()

    def parenthesised(self) -> int:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.syntax()
        self.pos += 1
        value = self.binary(1)
        self.skip()
        if not self.text.startswith(")", self.pos):
            raise self.syntax()
        self.last = self.pos
        self.pos += 1
        self.depth -= 1
        return value

    def character(self) -> int:
        """'abcd': a character constant, first character most significant (`ed x 'dcba'`)."""
        start = self.pos
        end = self.text.find("'", start + 1)
        if end < 0 or not 1 <= end - start - 1 <= 8:
            raise self.syntax()
        self.last = start
        self.pos = end + 1
        return int.from_bytes(bytes(ord(c) & 0xFF for c in self.text[start + 1:end]), "big")

    def word(self, word: str, start: int) -> int:
        first = word[0]
        if first == "`":
            self.pos = start
            raise self.syntax()
        if first == "!":
            return self.symbol(word[1:], start, couldnt_resolve)
        if first == "$" or word == ".":
            return self.fail(bad_register, start)      # pseudo-registers are not simulated
        number = parse_number(word, self.radix)
        if number is not None:
            value, backtick = number
            if value > MASK64:
                self.pos = start
                raise self.syntax(overflow)
            return value if backtick else self.pointer(value)
        if first.isdigit():
            self.pos = start
            raise self.syntax()
        # hex, then symbol, then register: a register name only fails as a register
        if word.lower() in self.registers:
            address = self.target.resolve(word)
            return self.pointer(address) if address is not None else self.register(word, start)
        return self.symbol(word, start, couldnt_resolve)

    def register(self, name: str, start: int) -> int:
        """A register of the current processor's stopped context (commands/context.py)."""
        value = read_register(self.target, current_processor(), name)
        if value is None:
            return self.fail(bad_register, start)
        return self.pointer(value) if self.target.arch.ptr_size == 4 else value

    def symbol(self, name: str, start: int, unknown: Callable[[str], DebuggerError]) -> int:
        address = self.target.resolve(name)
        if address is None:
            return self.fail(unknown, start)
        return self.pointer(address)

    def pointer(self, value: int) -> int:
        """A constant or address as dbgeng holds it: sign-extended on an x86 target."""
        return sign_extend32(value) if self.target.arch.ptr_size == 4 else value

    # -- evaluation ------------------------------------------------------------------------
    def read(self, address: int, size: int) -> int:
        if self.fault is not None:
            return 0
        try:
            data = self.target.read(address, size)
        except MemoryFault:
            return self.fail(memory_access, self.last)
        return int.from_bytes(data, "little")

    def apply_unary(self, op: str, value: int) -> int:
        if op == "-":
            return -value & MASK64
        if op == "+":
            return value
        if op == "not":
            return int(value == 0)
        if op == "hi":
            return (value >> 16) & 0xFFFF
        if op == "low":
            return value & 0xFFFF
        if op == "poi":
            return self.pointer(self.read(value, self.target.arch.ptr_size))
        return self.read(value, _READS[op])

    def apply(self, op: str, left: int, right: int, right_at: int) -> int:
        if op in ("/", "%") and right == 0:
            return self.fail(divide_by_zero, right_at)
        if op == "*":
            result = left * right
        elif op == "/":
            result = left // right
        elif op == "%":
            result = left % right
        elif op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "<<":
            result = left << (right & 63)
        elif op == ">>":
            result = left >> (right & 63)
        elif op == ">>>":
            signed = left - (1 << 64) if left >> 63 else left
            result = signed >> (right & 63)
        elif op == "&":
            result = left & right
        elif op == "^":
            result = left ^ right
        elif op == "|":
            result = left | right
        else:
            result = int(_compare(op, left, right))
        return result & MASK64


def _compare(op: str, left: int, right: int) -> bool:
    if op in ("==", "="):
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == ">":
        return left > right
    if op == "<=":
        return left <= right
    return left >= right

