"""The PowerShell syntax tree as tree-sitter-powershell gives it, and the errors a script can end with."""

from __future__ import annotations

import tree_sitter
import tree_sitter_powershell

from polyvisor_hyperv_loopback.powershell.errors import PSErrorRecord

__all__ = [
    "LANGUAGE",
    "WRAPPERS",
    "ExitScript",
    "Node",
    "ScriptError",
    "first_error",
    "named_nodes",
    "node_text",
    "parse_error_record",
    "strip",
    "type_key",
    "unsupported",
]

LANGUAGE = tree_sitter.Language(tree_sitter_powershell.language())
Node = tree_sitter.Node


class ScriptError(Exception):
    """The script uses something outside the supported subset, or is malformed."""

    def __init__(self, record: PSErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


class ExitScript(Exception):
    """``exit N``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def parse_error_record(message: str, error_id: str) -> PSErrorRecord:
    """Return the ParseException record PowerShell reports for a script it cannot parse."""
    return PSErrorRecord(
        message=message,
        category="ParserError",
        fully_qualified_error_id=error_id,
        exception_type="System.Management.Automation.ParseException",
    )


def unsupported(node: Node, what: str = "") -> ScriptError:
    text = node.text.decode("utf-8", "replace") if node.text else ""
    line = node.start_point[0] + 1
    col = node.start_point[1] + 1
    detail = what or f"'{node.type}'"
    return ScriptError(
        PSErrorRecord(
            message=f"At line:{line} char:{col}\n+ {text[:80]}\nThis host does not support {detail}.",
            category="ParserError",
            fully_qualified_error_id="NotSupportedByLoopbackHost",
            exception_type="System.Management.Automation.ParseException",
        )
    )


WRAPPERS = {
    "pipeline",
    "logical_expression",
    "bitwise_expression",
    "comparison_expression",
    "additive_expression",
    "multiplicative_expression",
    "format_expression",
    "range_expression",
    "array_literal_expression",
    "unary_expression",
    "left_assignment_expression",
    "logical_argument_expression",
    "bitwise_argument_expression",
    "comparison_argument_expression",
    "additive_argument_expression",
    "multiplicative_argument_expression",
    "format_argument_expression",
    "range_argument_expression",
    "argument_expression",
    "key_expression",
    "string_literal",
    "integer_literal",
    "member_name",
    "type_spec",
    "command_name_expr",
    "expression_with_unary_operator",
}


def named_nodes(node: Node) -> list[Node]:
    return [c for c in node.named_children if c.type != "comment"]


def node_text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text else ""


def type_key(type_node: Node) -> str:
    name = node_text(type_node).strip("[]").casefold()
    return name[len("system.") :] if name == "system.console" else name


def first_error(node: Node) -> Node:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            return first_error(child)
    return node


def strip(node: Node) -> Node:
    """Return the node a chain of single-child wrappers (pipeline, unary_expression...) stands for."""
    while node.type in WRAPPERS | {"pipeline_chain"} and len(node.children) == 1 and node.children[0].is_named:
        node = node.children[0]
    if node.type == "pipeline" and len(named_nodes(node)) == 1:
        return strip(named_nodes(node)[0])
    return node
