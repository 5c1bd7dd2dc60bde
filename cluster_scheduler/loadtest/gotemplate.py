"""The part of Go's text/template that upstream's scheduler_perf templates use for nodes, pods and
other objects: `{{.Index}}`, `{{.param}}`, function calls with nested parentheses and pipelines
(`AddInt`, `SubtractInt`, `MultiplyInt`, `DivideInt`, `Mod`, `Int`, `JSON`, `or`, `eq`, `ne`,
`lt`, `le`, `gt`, `ge`, `not`, `and`), and `{{if}}` / `{{else}}` / `{{end}}`. `range`, variables
(`$x := ...`) and whitespace trim markers (`{{-`) are not supported: such a template raises `Unsupported`, and the case that uses it is
listed as not runnable rather than rendered wrong. A missing key renders as `<no value>` and is
false in a condition, as in Go.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ACTION = re.compile(r"{{(.*?)}}", re.S)
_TOKEN = re.compile(r'\s*(?:(\()|(\))|(\|)|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|(\.[A-Za-z_][A-Za-z0-9_]*|\.)|([A-Za-z_][A-Za-z0-9_]*)|(\$\S*))')
NO_VALUE = "<no value>"


class Unsupported(ValueError):
    """A template action this renderer does not implement."""


class _Missing:
    def __str__(self) -> str:
        return NO_VALUE

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


def _int(v: Any) -> int:
    return int(float(v)) if isinstance(v, str) else int(v)


def _float(v: Any) -> float:
    return float(v)


FUNCS = {
    "AddInt": lambda a, b: _int(a) + _int(b), "SubtractInt": lambda a, b: _int(a) - _int(b),
    "MultiplyInt": lambda a, b: _int(a) * _int(b),
    "DivideInt": lambda a, b: int(_int(a) / _int(b)),  # truncated toward zero, as Go
    "AddFloat": lambda a, b: _float(a) + _float(b), "SubtractFloat": lambda a, b: _float(a) - _float(b),
    "MultiplyFloat": lambda a, b: _float(a) * _float(b), "DivideFloat": lambda a, b: _float(a) / _float(b),
    "Mod": lambda a, b: _int(a) % _int(b) if _int(a) >= 0 else -(-_int(a) % _int(b)),
    "Int": _int, "JSON": lambda v: json.dumps(v, separators=(",", ":")),
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "not": lambda a: not a,
}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot parse {expr!r}")
        kinds = ("(", ")", "|", "str", "num", "field", "ident", "var")
        kind = next(k for k, g in zip(kinds, m.groups()) if g is not None)
        if kind == "var":
            raise Unsupported(f"template variables ({expr!r})")
        out.append((kind, m.group(m.lastindex)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, toks: list[tuple[str, str]], env: dict[str, Any]):
        self.toks, self.i, self.env = toks, 0, env

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def pipeline(self) -> Any:
        v = self.command()
        while self.peek() == "|":
            self.i += 1
            kind, name = self.toks[self.i]
            if kind != "ident" or name not in FUNCS:
                raise Unsupported(f"pipeline into {name!r}")
            self.i += 1
            args = self.args()
            v = FUNCS[name](*args, v)
        return v

    def args(self) -> list[Any]:
        out = []
        while self.peek() not in (None, ")", "|"):
            out.append(self.operand())
        return out

    def command(self) -> Any:
        kind = self.peek()
        if kind == "ident":
            name = self.toks[self.i][1]
            self.i += 1
            if name == "or":
                args = self.args()
                return next((a for a in args if a), args[-1] if args else MISSING)
            if name == "and":
                args = self.args()
                return next((a for a in args if not a), args[-1] if args else MISSING)
            if name in ("nil", "true", "false"):
                return {"nil": None, "true": True, "false": False}[name]
            if name not in FUNCS:
                raise Unsupported(f"function {name!r}")
            return FUNCS[name](*self.args())
        return self.operand()

    def operand(self) -> Any:
        kind, text = self.toks[self.i]
        self.i += 1
        if kind == "(":
            v = self.pipeline()
            if self.peek() != ")":
                raise Unsupported("unbalanced parentheses")
            self.i += 1
            return v
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "field":
            return self.env if text == "." else self.env.get(text[1:], MISSING)
        if kind == "ident" and text in ("nil", "true", "false"):
            return {"nil": None, "true": True, "false": False}[text]
        raise Unsupported(f"operand {text!r}")


def evaluate(expr: str, env: dict[str, Any]) -> Any:
    p = _Parser(_tokens(expr), env)
    v = p.pipeline()
    if p.peek() is not None:
        raise Unsupported(f"trailing tokens in {expr!r}")
    return v


def _text(v: Any) -> str:
    if v is None:
        return NO_VALUE  # Go prints <no value> for nil
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # a YAML number param prints as Go prints a float64 of integral value
    return str(v)


def render(text: str, env: dict[str, Any]) -> str:
    """Render `text` with `env` (Index, Count and the template parameters)."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch is live, some branch of this if was taken)
    pos = 0
    live = True
    for m in _ACTION.finditer(text):
        if live:
            out.append(text[pos:m.start()])
        pos = m.end()
        raw = m.group(1)
        if raw.startswith("-") or raw.endswith("-"):
            raise Unsupported("whitespace trim markers ({{- -}})")
        action = raw.strip()
        word = action.split(None, 1)[0] if action else ""
        if word == "if":
            cond = bool(evaluate(action[2:], env)) if live else False
            stack.append((live, cond))
            live = live and cond
        elif word == "else":
            if not stack:
                raise Unsupported("else without if")
            outer, taken = stack[-1]
            if action.strip() != "else":
                raise Unsupported(f"{action!r}")
            live = outer and not taken
        elif word == "end":
            if not stack:
                raise Unsupported("end without if")
            live = stack.pop()[0]
        elif word in ("range", "with", "define", "template", "block") or action.startswith("/*"):
            raise Unsupported(f"{{{{{word}}}}} actions")
        elif live:
            out.append(_text(evaluate(action, env)))
    if stack:
        raise Unsupported("if without end")
    if live:
        out.append(text[pos:])
    return "".join(out)
