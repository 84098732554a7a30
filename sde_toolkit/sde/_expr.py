"""Potential expressions by a whitelist grammar: parsed, never evaluated as Python.

The grammar (a subset of Python's expression syntax, read with :func:`ast.parse`, which only parses):

* numbers (``2``, ``0.1``, ``1e-3``), the declared variable names (``x``, ``y``, ``z``, ...) and the constants
  ``pi`` and ``E``;
* ``+ - * / **`` and unary ``-``/``+``;
* calls of the functions in :data:`FUNCTIONS` with positional arguments (``exp(x)``, ``atan2(y, x)``).

Anything else (attribute access, subscripts, comparisons, keywords, strings, other names such as ``__import__``,
``I``, ``nan`` or ``oo``) is refused with a ``ValueError`` naming the token and its position. Limits keep every
expression cheap: at most :data:`MAX_LENGTH` characters, :data:`MAX_NODES` tree nodes, :data:`MAX_DEPTH` nesting
levels, and exponents of magnitude at most :data:`MAX_EXPONENT` (``x**(10**10**10)`` would otherwise hang the
symbolic algebra). The SymPy expression is built node by node from the checked tree, so the code that SymPy later
generates for NumPy and Numba (``lambdify``) contains only whitelisted operations.
"""

from __future__ import annotations

import ast
import math

MAX_LENGTH = 2000
MAX_NODES = 1000
MAX_DEPTH = 40
MAX_EXPONENT = 64

# name -> (sympy function name, number of arguments)
FUNCTIONS = {
    "exp": ("exp", 1), "log": ("log", 1), "sqrt": ("sqrt", 1), "sin": ("sin", 1), "cos": ("cos", 1),
    "tan": ("tan", 1), "sinh": ("sinh", 1), "cosh": ("cosh", 1), "tanh": ("tanh", 1), "asin": ("asin", 1),
    "acos": ("acos", 1), "atan": ("atan", 1), "asinh": ("asinh", 1), "acosh": ("acosh", 1), "atanh": ("atanh", 1),
    "abs": ("Abs", 1), "erf": ("erf", 1), "erfc": ("erfc", 1), "atan2": ("atan2", 2),
}
CONSTANTS = ("pi", "E")
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NAMES = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "**": "power"}


class ExpressionError(ValueError):
    """An expression outside the whitelist grammar; ``position`` is the 0-based column of the offending token."""

    def __init__(self, message: str, expression: str, position: int | None = None):
        self.expression, self.position = expression, position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"from_expression: {expression!r}: {message}{where}")


def _allowed(variables) -> str:
    return (f"allowed: the variables {', '.join(variables)}, numbers, + - * / **, the constants "
            f"{', '.join(CONSTANTS)} and the functions {', '.join(sorted(FUNCTIONS))}")


def _numeric(node) -> float | None:
    """The value of a subtree made only of numbers and arithmetic (``None`` when it holds a variable or a call)."""
    if isinstance(node, ast.Constant):
        v = node.value  # build() refuses every literal but real numbers; here any other is "not numeric"
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if isinstance(node, ast.UnaryOp):
        v = _numeric(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp):
        a, b = _numeric(node.left), _numeric(node.right)
        if a is None or b is None:
            return None
        try:
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Div):
                return a / b if b != 0 else math.inf
            if abs(b) > MAX_EXPONENT:
                return math.inf
            r = a**b
            return math.nan if isinstance(r, complex) else float(r)
        except (OverflowError, ZeroDivisionError, ValueError):
            return math.inf
    return None


def parse(expression: str, variables: tuple[str, ...]):
    """The checked SymPy expression of ``expression`` in ``variables`` (symbols, real).

    Returns ``(expr, symbols)``. Raises :class:`ExpressionError` (a ``ValueError``) for anything outside the
    grammar or beyond the limits.
    """
    import sympy as sp

    if not isinstance(expression, str):
        raise TypeError(f"from_expression: the expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters ({len(expression)})", expression[:40] + "...")
    if not expression.strip():
        raise ExpressionError("the expression is empty", expression)
    for v in variables:
        if not (isinstance(v, str) and v.isidentifier() and not v.startswith("_")) or v in CONSTANTS or v in FUNCTIONS:
            raise ValueError(f"from_expression: {v!r} cannot be a variable name (a plain identifier, not a "
                             "function or constant name)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression ({exc.msg})", expression,
                              None if exc.offset is None else exc.offset - 1) from None
    syms = sp.symbols(variables, real=True)
    if not isinstance(syms, (tuple, list)):
        syms = (syms,)
    table = dict(zip(variables, syms))
    count = [0]

    def build(node, depth: int):
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ExpressionError(f"more than {MAX_NODES} terms", expression)
        if depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels", expression, getattr(node, "col_offset", None))
        pos = getattr(node, "col_offset", None)
        if isinstance(node, ast.Expression):
            return build(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"the literal {node.value!r} is not allowed (only real numbers)", expression, pos)
            if not math.isfinite(float(node.value)):
                raise ExpressionError(f"the number {node.value!r} is not finite", expression, pos)
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(repr(node.value))
        if isinstance(node, ast.Name):
            if node.id in table:
                return table[node.id]
            if node.id == "pi":
                return sp.pi
            if node.id == "E":
                return sp.E
            raise ExpressionError(f"the name {node.id!r} is not allowed ({_allowed(variables)})", expression, pos)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = build(node.operand, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            op = _BINOPS[type(node.op)]
            if op == "**":
                e = _numeric(node.right)
                if e is None:
                    raise ExpressionError("a power needs a numeric exponent (e.g. x**2); use exp(a * log(x)) for "
                                          "variable exponents", expression, getattr(node.right, "col_offset", pos))
                if not (math.isfinite(e) and abs(e) <= MAX_EXPONENT):
                    raise ExpressionError(f"the exponent {e:.6g} is beyond +-{MAX_EXPONENT}", expression,
                                          getattr(node.right, "col_offset", pos))
                if _numeric(node.left) is not None:
                    val = _numeric(node)
                    if val is None or not math.isfinite(val):
                        raise ExpressionError("a constant power overflows or is not real", expression, pos)
            a, b = build(node.left, depth + 1), build(node.right, depth + 1)
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a / b
            return a**b
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                called = ast.get_source_segment(expression.strip(), node.func) or type(node.func).__name__
                raise ExpressionError(f"calling {called!r} is not allowed (only the plain functions "
                                      f"{', '.join(sorted(FUNCTIONS))})", expression, pos)
            name = node.func.id
            if name not in FUNCTIONS:
                raise ExpressionError(f"the function {name!r} is not allowed ({_allowed(variables)})", expression,
                                      pos)
            if node.keywords:
                raise ExpressionError(f"{name}() takes no keyword arguments", expression, pos)
            sp_name, arity = FUNCTIONS[name]
            if len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
                raise ExpressionError(f"{name}() takes {arity} argument(s), got {len(node.args)}", expression, pos)
            args = [build(a, depth + 1) for a in node.args]
            return getattr(sp, sp_name)(*args)
        kind = type(node).__name__
        token = ast.get_source_segment(expression.strip(), node) or kind
        raise ExpressionError(f"{token!r} ({kind}) is not allowed ({_allowed(variables)})", expression, pos)

    expr = build(tree, 0)
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or expr.is_real is False:
        raise ExpressionError("the expression is not a finite real function", expression)
    return expr, tuple(syms)
