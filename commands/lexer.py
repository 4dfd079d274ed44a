"""Pygments lexer for a kd command line, used to colour the input as it is typed.

Each `;`-separated command starts with its name (`!ext`, `.meta`, a plain command or a script
token) and goes on with arguments: numbers in any MASM spelling, `module!symbol`, `@register`,
`/flags`, strings.  `$<`, `$><` and the `*` comment take the rest of the line.
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String,
                            Text, Whitespace)

_NUMBER = (r"(?:0[xX][0-9a-fA-F`]+|0n[0-9]+|0t[0-7]+|0y[01]+"
           r"|[0-9a-fA-F]+(?:`[0-9a-fA-F]+)?)(?![\w!])")


class KdLexer(RegexLexer):
    name = "kd"
    aliases = ["kd", "windbg"]
    filenames = ["*.wds"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"\*.*", Comment.Single),
            (r"\$\$(?![<>])[^;]*", Comment.Single),
            (r"(\$><|\$<)(.*)", bygroups(Keyword.Reserved, String)),
            (r"(\$\$>a<|\$\$><|\$\$<)([^;\s]*)", bygroups(Keyword.Reserved, String), "args"),
            (r"![\w.]*", Name.Function, "args"),
            (r"\.\w+", Name.Builtin, "args"),
            (r"\?\??", Keyword, "args"),
            (r"[A-Za-z_]\w*", Keyword, "args"),
            (r"[^;\s]", Text, "args"),
            (r";", Punctuation),
        ],
        "args": [
            (r";", Punctuation, "#pop"),
            (r"\s+", Whitespace),
            (r'"(?:\\.|[^"\\])*"?', String),
            (r"(?<=\s)[/-][A-Za-z]\w*", Name.Attribute),
            (r"@\$?\w+", Name.Variable),
            (r"\w+!\w*", Name.Namespace),
            (_NUMBER, Number.Hex),
            (r"[A-Za-z_]\w*", Name),
            (r"[-+*/%&|^~()<>=!\[\],.:]", Operator),
            (r".", Text),
        ],
    }
