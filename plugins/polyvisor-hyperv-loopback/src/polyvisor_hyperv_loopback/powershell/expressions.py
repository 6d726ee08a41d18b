"""Expressions: literals, variables, strings with ``$(...)`` inside, ``@()``, ``@{}``, casts, the operators,
member access, indexing and method calls. Each node type has its ``_x_<type>`` handler."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.powershell.values import (
    PSHashtable,
    enumerate_value,
    is_truthy,
    missing,
    new_custom_object,
    property_value,
    to_ps_string,
)

from .members import Members
from .operators import add, compare, format_string, is_type, unescape
from .syntax import Node, named_nodes, node_text, strip, type_key, unsupported

__all__ = ["Expressions", "Runner"]


class Runner(Protocol):
    """What an expression needs from the interpreter running it: pipelines, variables and statements."""

    def value(self, node: Node) -> object:
        """Return the value of a pipeline used as a value."""
        ...

    def get_var(self, name: str) -> object:
        """Return the variable's value (None when it is not set)."""
        ...

    def statements_output(self, node: Node) -> list[object]:
        """Run the statements of ``$(...)`` or ``@(...)`` and return their output."""
        ...


class Expressions:
    """Evaluates expression nodes; pipelines, variables and statements inside them go back to the ``Runner``."""

    def __init__(self, runner: Runner, members: Members) -> None:
        self._runner = runner
        self._members = members

    def expr(self, node: Node) -> object:
        """Return the value of an expression node."""
        node = strip(node)
        kind = node.type
        handler: Callable[[Node], object] | None = getattr(self, f"_x_{kind}", None)
        if handler is None:
            raise unsupported(node)
        return handler(node)

    def _x_pipeline(self, node: Node) -> object:
        return self._runner.value(node)

    def _x_pipeline_chain(self, node: Node) -> object:
        return self._runner.value(node)

    def _x_variable(self, node: Node) -> object:
        text = node_text(node)
        if text.startswith("@"):
            raise unsupported(node, "splatting outside a command")
        name = text[1:].strip("{}")
        if ":" in name:
            raise unsupported(node, f"the scoped or drive variable '{text}'")
        return self._runner.get_var(name)

    def _x_decimal_integer_literal(self, node: Node) -> object:
        text = node_text(node).lower()
        return int(text.rstrip("l"))

    def _x_hexadecimal_integer_literal(self, node: Node) -> object:
        return int(node_text(node).lower().rstrip("l"), 16)

    def _x_real_literal(self, node: Node) -> object:
        return float(node_text(node).rstrip("dD"))

    def _x_verbatim_string_characters(self, node: Node) -> object:
        return node_text(node)[1:-1].replace("''", "'")

    def _x_verbatim_here_string_characters(self, node: Node) -> object:
        text = node_text(node)
        return text[3:-3].strip("\r\n") if text.startswith("@'") else text

    def _x_expandable_string_literal(self, node: Node) -> object:
        return self._expand(node, 1, 1)

    def _x_expandable_here_string_literal(self, node: Node) -> object:
        body = self._expand(node, 2, 2)
        return body.strip("\r\n")

    def _expand(self, node: Node, open_len: int, close_len: int) -> str:
        raw = node.text or b""
        start, end = node.start_byte + open_len, node.end_byte - close_len
        out: list[str] = []
        pos = start
        for child in node.named_children:
            out.append(unescape(raw[pos - node.start_byte : child.start_byte - node.start_byte].decode("utf-8")))
            if child.type == "variable":
                out.append(to_ps_string(self._x_variable(child)))
            elif child.type == "sub_expression":
                out.append(to_ps_string(self._x_sub_expression(child)))
            else:
                raise unsupported(child)
            pos = child.end_byte
        out.append(unescape(raw[pos - node.start_byte : end - node.start_byte].decode("utf-8")))
        return "".join(out)

    def _x_sub_expression(self, node: Node) -> object:
        out = self._runner.statements_output(node)
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def _x_array_expression(self, node: Node) -> object:
        return list(self._runner.statements_output(node))

    def _x_parenthesized_expression(self, node: Node) -> object:
        inner = named_nodes(node)
        return self._runner.value(inner[0]) if inner else None

    def _x_hash_literal_expression(self, node: Node) -> object:
        table = PSHashtable()
        for body in node.named_children:
            for entry in body.named_children:
                if entry.type != "hash_entry":
                    continue
                key_node, value_node = named_nodes(entry)[0], named_nodes(entry)[-1]
                key_inner = strip(key_node)
                key = node_text(key_inner) if key_inner.type == "simple_name" else self.expr(key_inner)
                table[key] = self._runner.value(value_node)
        return table

    def _x_array_literal_expression(self, node: Node) -> object:
        return [self.expr(c) for c in named_nodes(node)]

    def _x_expression_with_unary_operator(self, node: Node) -> object:
        op = node_text(node.children[0]).lower()
        if node.children[0].type == "cast_expression" or node.named_children[0].type == "cast_expression":
            return self._x_cast_expression(node.named_children[0])
        operand = self.expr(node.named_children[-1])
        if op in {"-not", "!"}:
            return not is_truthy(operand)
        if op == "-":
            return -operand  # type: ignore[operator]
        if op == "+":
            return operand
        if op == ",":
            return [operand]
        raise unsupported(node, f"the unary operator '{op}'")

    def _x_cast_expression(self, node: Node) -> object:
        type_name = node_text(node.named_children[0]).strip("[]").casefold()
        operand_node = node.named_children[1]
        if type_name == "ordered":
            table = self.expr(operand_node)
            if not isinstance(table, PSHashtable):
                raise unsupported(node, "[ordered] on a non-hashtable")
            table.ordered = True
            return table
        value = self.expr(operand_node)
        if type_name in {"string", "system.string"}:
            return to_ps_string(value)
        if type_name in {"int", "int32", "long", "int64", "system.int32", "system.int64"}:
            return int(value) if not isinstance(value, str) else int(value.strip())  # type: ignore[call-overload]
        if type_name in {"uint16", "uint32", "system.uint16", "system.uint32"}:
            number = int(value) if not isinstance(value, str) else int(value.strip())  # type: ignore[call-overload]
            if not 0 <= number < 2 ** (16 if type_name.endswith("16") else 32):
                raise unsupported(node, f"[{type_name}] of {number} (an overflow error on Windows)")
            return number
        if type_name in {"bool", "system.boolean"}:
            return is_truthy(value)
        if type_name in {"array", "object[]"}:
            return enumerate_value(value)
        if type_name in {"pscustomobject"} and isinstance(value, PSHashtable):
            return new_custom_object([(to_ps_string(k), v) for k, v in value.items()])
        if type_name in {"guid", "system.guid"}:
            return uuid.UUID(to_ps_string(value))
        raise unsupported(node, f"the cast [{type_name}]")

    def _binary(self, node: Node) -> tuple[object, str, object]:
        left, right = named_nodes(node)[0], named_nodes(node)[-1]
        op = next(node_text(c) for c in node.children if c not in (left, right))
        return self.expr(left), op, self.expr(right)

    def _x_comparison_expression(self, node: Node) -> object:
        right_node = strip(named_nodes(node)[-1])
        if right_node.type == "type_literal":
            op = next(node_text(c) for c in node.children if c.type == "comparison_operator").casefold()
            if op in {"-is", "-isnot"}:
                hit = is_type(self.expr(named_nodes(node)[0]), type_key(right_node), node)
                return hit if op == "-is" else not hit
        left, op, right = self._binary(node)
        try:
            return compare(op, left, right)
        except ValueError:
            raise unsupported(node, f"the operator '{op}'") from None

    def _x_logical_expression(self, node: Node) -> object:
        left_node, right_node = named_nodes(node)[0], named_nodes(node)[-1]
        op = next(node_text(c) for c in node.children if c not in (left_node, right_node)).lower()
        left = is_truthy(self.expr(left_node))
        if op == "-and":
            return left and is_truthy(self.expr(right_node))
        if op == "-or":
            return left or is_truthy(self.expr(right_node))
        if op == "-xor":
            return left != is_truthy(self.expr(right_node))
        raise unsupported(node, f"the operator '{op}'")

    def _x_additive_expression(self, node: Node) -> object:
        left, op, right = self._binary(node)
        if op == "+":
            return add(left, right)
        return left - right  # type: ignore[operator]

    def _x_multiplicative_expression(self, node: Node) -> object:
        left, op, right = self._binary(node)
        if op == "*":
            return left * right  # type: ignore[operator]
        if op == "/":
            result = left / right  # type: ignore[operator]
            return int(result) if float(result).is_integer() else result
        return left % right  # type: ignore[operator]

    def _x_format_expression(self, node: Node) -> object:
        left, _, right = self._binary(node)
        return format_string(to_ps_string(left), enumerate_value(right))

    # Inside method-call argument lists the grammar uses *_argument_expression twins of the operators.
    _x_logical_argument_expression = _x_logical_expression
    _x_comparison_argument_expression = _x_comparison_expression
    _x_additive_argument_expression = _x_additive_expression
    _x_multiplicative_argument_expression = _x_multiplicative_expression
    _x_format_argument_expression = _x_format_expression

    def _x_member_access(self, node: Node) -> object:
        parts = named_nodes(node)
        name = node_text(parts[-1])
        if parts[0].type == "type_literal":
            return self._members.static_member(parts[0], name, node)
        return self._members.member(self.expr(parts[0]), name, node)

    def _x_element_access(self, node: Node) -> object:
        container = self.expr(node.named_children[0])
        key = self.expr(strip(node.named_children[1]))
        if isinstance(container, PSHashtable):
            return container[key]
        if isinstance(container, list | str | bytes) and isinstance(key, int):
            try:
                return container[key]
            except IndexError:
                return None
        if isinstance(container, PSObject) and isinstance(key, str):
            value = property_value(container, key)
            return None if missing(value) else value
        raise unsupported(node, "indexing this value")

    def _x_invokation_expression(self, node: Node) -> object:
        parts = named_nodes(node)
        arg_list = parts[-1]
        name = node_text(parts[-2])
        args: list[object] = []
        arg_exprs = arg_list.child_by_field_name("argument_expression_list")
        if arg_exprs is not None:
            args = [self.expr(c) for c in named_nodes(arg_exprs)]
        if parts[0].type == "type_literal":
            return self._members.static_call(parts[0], name, args, node)
        return self._members.method(self.expr(parts[0]), name, args, node)
