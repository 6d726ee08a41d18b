"""A small PowerShell interpreter for the generic language subset scripts sent to the host use.

Scripts are parsed with tree-sitter-powershell and walked directly. Supported: statements and pipelines,
variables, assignment (plain, ``+=``, index ``$h[k] = v``, member ``$o.x = v``), literals, ``@()``, ``@{}``,
``[ordered]@{}``, ``$(...)``, ``if/elseif/else``, ``foreach``, ``while``, ``try/catch/finally``, ``throw``, ``exit``,
comparison/logical/arithmetic/-f operators, member access and a whitelist of methods and static members, the
call operator ``&`` with splatting (on a command name or a script block), a script's ``param()`` block
(:mod:`.scriptblocks`), and the commands of the registry. Anything else raises ``ScriptError``
(a ParseException or a CommandNotFoundException-style record): nothing is silently skipped. Values read from
data (strings, JSON) are never parsed as code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic

import tree_sitter
from psrpcore.types import PSObject

from .commands import CommandTable, SessionT
from .errors import HostError, PipelineStopped, PSErrorRecord
from .expressions import Expressions
from .members import Console, Members, PropertyView
from .operators import add
from .scriptblocks import ScriptBlock, bind_parameters, param_block
from .syntax import (
    LANGUAGE,
    ExitScript,
    Node,
    ScriptError,
    first_error,
    named_nodes,
    node_text,
    parse_error_record,
    strip,
    unsupported,
)
from .values import (
    ErrorRecordValue,
    PSHashtable,
    enumerate_value,
    is_truthy,
    property_names,
    to_ps_string,
)

__all__ = ["Console", "ExitScript", "Interpreter", "ScriptError", "parse_error_record"]


@dataclass
class _Flow:
    output: list[object] = field(default_factory=list)
    #: Where the script's own output goes as it is produced (a long-running script streams); None collects it.
    emit: Callable[[object], None] | None = None

    def write(self, items: list[object]) -> None:
        if self.emit is None:
            self.output.extend(items)
        else:
            for item in items:
                self.emit(item)


class Interpreter(Generic[SessionT]):
    """Runs scripts in a session, calling the commands of a table (the cmdlets' ``Session`` and ``Registry``)."""

    def __init__(
        self,
        session: SessionT,
        registry: CommandTable[SessionT],
        console: Console | None = None,
        on_parse: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.registry = registry
        self.console = console
        #: Told every text parsed as source (a script, a script block run with ``&``), before it is parsed.
        self.on_parse = on_parse
        self.variables: dict[str, object] = {
            "errorActionPreference": "Continue",
            "progressPreference": "Continue",
            "warningPreference": "Continue",
            "confirmPreference": "High",
        }
        self._parser = tree_sitter.Parser(LANGUAGE)
        self._members = Members(console, session)
        self._expressions = Expressions(self, self._members)

    # ----- entry points -----

    def parse(self, script: str) -> Node:
        """Parse ``script``; a syntax error raises ScriptError with a ParseException record."""
        if self.on_parse is not None:
            self.on_parse(script)
        tree = self._parser.parse(script.encode("utf-8"))
        root = tree.root_node
        if root.has_error:
            bad = first_error(root)
            line, col = bad.start_point[0] + 1, bad.start_point[1] + 1
            raise ScriptError(
                parse_error_record(
                    f"At line:{line} char:{col}\n+ {node_text(bad)[:80]}\nUnexpected token '{node_text(bad)[:40]}' "
                    "in expression or statement.",
                    "UnexpectedToken",
                )
            )
        return root

    def run(
        self,
        script: str,
        pipeline_input: list[object] | None = None,
        emit: Callable[[object], None] | None = None,
        arguments: Sequence[tuple[str | None, object]] = (),
    ) -> list[object]:
        """Run ``script`` and return what it writes to the output stream.

        ``arguments`` (name or None, value) are bound to the script's ``param()`` block; a script without one
        takes none. With ``emit``, each object the script writes goes there at once instead (PowerShell writes a
        script's output downstream as each statement produces it), and the list returned is empty.
        """
        root = self.parse(script)
        self.variables["input"] = list(pipeline_input or [])
        block = param_block(root)
        if block is not None:
            values, error_action = bind_parameters(block, arguments, self.value, "")
            for name, value in values.items():
                self._set_var(name, value)
            if error_action is not None:
                self._set_var("ErrorActionPreference", error_action)
        elif arguments:
            raise unsupported(root, "arguments to a script without a param() block ($args)")
        flow = _Flow(emit=emit)
        self._block(root, flow)
        return flow.output

    # ----- variables -----

    def get_var(self, name: str) -> object:
        """Return the variable's value (None when it is not set); ``$true``, ``$false`` and ``$null`` are constants."""
        low = name.casefold()
        if low in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[low]
        for key, value in self.variables.items():
            if key.casefold() == low:
                return value
        return None

    def _set_var(self, name: str, value: object) -> None:
        low = name.casefold()
        if low in {"true", "false", "null"}:
            if low == "null":
                return
            raise HostError(
                f"Cannot overwrite variable {name} because it is read-only or constant.",
                error_id="VariableNotWritable",
                category="WriteError",
                target_name=name,
                exception_type="System.Management.Automation.SessionStateUnauthorizedAccessException",
            )
        for key in list(self.variables):
            if key.casefold() == low:
                del self.variables[key]
        self.variables[name] = value
        if low == "erroractionpreference":
            self.session.error_preference = to_ps_string(value)
        if low == "warningpreference":
            self.session.warning_preference = to_ps_string(value)

    # ----- statements -----

    def _block(self, node: Node, flow: _Flow) -> None:
        for child in named_nodes(node):
            self._statement(child, flow)

    def _statement(self, node: Node, flow: _Flow) -> None:
        kind = node.type
        if kind in {"statement_list", "statement_block", "program"}:
            self._block(node, flow)
        elif kind in {"empty_statement", "param_block"}:
            return  # a param() block is bound before the script runs
        elif kind == "pipeline":
            flow.write(self._pipeline(node))
        elif kind == "if_statement":
            self._if(node, flow)
        elif kind == "foreach_statement":
            self._foreach(node, flow)
        elif kind == "while_statement":
            self._while(node, flow)
        elif kind == "try_statement":
            self._try(node, flow)
        elif kind == "flow_control_statement":
            self._flow_control(node)
        else:
            raise unsupported(node)

    def _if(self, node: Node, flow: _Flow) -> None:
        condition = node.child_by_field_name("condition")
        blocks = [c for c in node.named_children if c.type == "statement_block"]
        if condition is not None and is_truthy(self.value(condition)):
            self._block(blocks[0], flow)
            return
        for clause in node.named_children:
            if clause.type == "elseif_clauses":
                for elif_ in clause.named_children:
                    cond = elif_.child_by_field_name("condition")
                    if cond is not None and is_truthy(self.value(cond)):
                        self._block(next(c for c in elif_.named_children if c.type == "statement_block"), flow)
                        return
            elif clause.type == "else_clause":
                self._block(next(c for c in clause.named_children if c.type == "statement_block"), flow)
                return

    def _foreach(self, node: Node, flow: _Flow) -> None:
        parts = named_nodes(node)
        variable = next(c for c in parts if c.type == "variable")
        collection = next(c for c in parts if c.type == "pipeline")
        body = next(c for c in parts if c.type == "statement_block")
        for item in enumerate_value(self.value(collection)):
            self._set_var(node_text(variable)[1:], item)
            self._block(body, flow)

    def _while(self, node: Node, flow: _Flow) -> None:
        condition = next(c for c in node.named_children if c.type == "while_condition")
        body = next(c for c in node.named_children if c.type == "statement_block")
        while True:
            # PowerShell checks for a stop request between statements: a stopped pipeline never loops again.
            self.session.check_stopped()
            if not is_truthy(self.value(named_nodes(condition)[0])):
                return
            self._block(body, flow)

    def _try(self, node: Node, flow: _Flow) -> None:
        body = next(c for c in node.named_children if c.type == "statement_block")
        catches: list[Node] = []
        final: Node | None = None
        for child in node.named_children:
            if child.type == "catch_clauses":
                catches = list(child.named_children)
            elif child.type == "catch_clause":
                catches.append(child)
            elif child.type == "finally_clause":
                final = child
        try:
            self._block(body, flow)
        except PipelineStopped as stop:
            handler = self._pick_catch(catches, stop.record)
            if handler is None:
                raise
            saved = self.variables.get("_")
            self.variables["_"] = ErrorRecordValue(stop.record)
            try:
                self._block(next(c for c in handler.named_children if c.type == "statement_block"), flow)
            finally:
                self.variables["_"] = saved
        finally:
            if final is not None:
                self._block(next(c for c in final.named_children if c.type == "statement_block"), flow)

    def _pick_catch(self, catches: list[Node], record: PSErrorRecord) -> Node | None:
        for clause in catches:
            types = [c for c in clause.named_children if c.type == "catch_type_list"]
            if not types:
                return clause
            for literal in types[0].named_children:
                name = node_text(literal).strip("[]")
                if record.exception_type.casefold().endswith(name.casefold()) or name.casefold() in {
                    "exception",
                    "system.exception",
                }:
                    return clause
        return None

    def _flow_control(self, node: Node) -> None:
        keyword = node_text(node).split(None, 1)[0].casefold()
        args = named_nodes(node)
        value = self.value(args[0]) if args else None
        if keyword == "exit":
            raise ExitScript(int(value) if value is not None else 0)  # type: ignore[call-overload]
        if keyword == "throw":
            if isinstance(value, ErrorRecordValue):
                raise PipelineStopped(value.record)
            message = to_ps_string(value) if value is not None else "ScriptHalted"
            raise PipelineStopped(
                PSErrorRecord(
                    message=message,
                    category="OperationStopped",
                    fully_qualified_error_id=message,
                    exception_type="System.Management.Automation.RuntimeException",
                    target_name=message,
                    target_object=message,
                )
            )
        raise unsupported(node, f"the '{keyword}' statement")

    # ----- pipelines -----

    def _pipeline(self, node: Node) -> list[object]:
        """Run a pipeline node; return its output objects (an expression's value is enumerated)."""
        inner = strip(node)
        if inner.type == "assignment_expression":
            self._assign(inner)
            return []
        if inner.type == "pipeline_chain":
            return self._chain(inner)
        if inner.type == "command":
            return self._command(inner, None)
        return enumerate_value(self._expressions.expr(inner))

    def _chain(self, node: Node) -> list[object]:
        elements = named_nodes(node)
        if any(node_text(c) in {"&&", "||"} for c in node.children if not c.is_named):
            raise unsupported(node, "pipeline chain operators (PowerShell 7 only)")
        data: list[object] | None = None
        for element in elements:
            stripped = strip(element)
            if stripped.type == "command":
                data = self._command(stripped, data)
            elif data is None:
                data = enumerate_value(self._expressions.expr(stripped))
            else:
                raise unsupported(element, "an expression after '|'")
        return data or []

    def value(self, node: Node) -> object:
        """Evaluate a pipeline used as a value: an expression keeps its value, commands collect output."""
        inner = strip(node)
        if inner.type in {"pipeline_chain", "command", "assignment_expression"}:
            if inner.type == "pipeline_chain" and len(named_nodes(inner)) == 1:
                only = strip(named_nodes(inner)[0])
                if only.type != "command":
                    return self._expressions.expr(only)
            out = self._pipeline(inner)
            if not out:
                return None
            return out[0] if len(out) == 1 else out
        return self._expressions.expr(inner)

    def _command(self, node: Node, pipeline_input: list[object] | None) -> list[object]:
        name_node = node.child_by_field_name("command_name")
        if name_node is None:
            raise unsupported(node, "this command form")
        invoke_op = any(c.type == "command_invokation_operator" for c in node.children)
        if invoke_op and node_text(name_node).startswith("$"):
            target = self._command_name_value(name_node)
            if isinstance(target, ScriptBlock):
                return self._run_block(target, node, pipeline_input)
            name = to_ps_string(target)
        elif name_node.type == "command_name" or not invoke_op:
            name = node_text(name_node)
        else:
            name = to_ps_string(self._expressions.expr(strip(name_node)))
        arguments = self._arguments(node.child_by_field_name("command_elements"))
        cmdlet = self.registry.get(name)
        if cmdlet is None:
            raise PipelineStopped(
                PSErrorRecord(
                    message=f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
                    "or operable program. Check the spelling of the name, or if a path was included, verify that "
                    "the path is correct and try again.",
                    category="ObjectNotFound",
                    fully_qualified_error_id="CommandNotFoundException",
                    exception_type="System.Management.Automation.CommandNotFoundException",
                    target_name=name,
                    target_object=name,
                )
            )
        return cmdlet.run(self.session, arguments, pipeline_input)

    def _run_block(self, block: ScriptBlock, node: Node, pipeline_input: list[object] | None) -> list[object]:
        """``& $block args``: the block runs in a child scope (it reads this scope's variables; what it sets stays
        its own), its param() block bound to the arguments."""
        arguments = self._arguments(node.child_by_field_name("command_elements"))
        child = Interpreter(self.session, self.registry, self.console, self.on_parse)
        child.variables = dict(self.variables)
        preferences = self.session.error_preference, self.session.warning_preference
        try:
            return child.run(block.text, pipeline_input, arguments=arguments)
        finally:
            self.session.error_preference, self.session.warning_preference = preferences

    def _command_name_value(self, node: Node) -> object:
        # "& $step.command" parses as a path_command_name: a variable followed by ".member" tokens.
        inner = strip(node)
        if inner.type == "path_command_name":
            parts = inner.named_children
            value = self._expressions.expr(parts[0])
            for token in parts[1:]:
                for member in node_text(token).split(".")[1:]:
                    value = self._members.member(value, member, token)
            return value
        return self._expressions.expr(inner)

    def _arguments(self, node: Node | None) -> list[tuple[str | None, object]]:
        if node is None:
            return []
        args: list[tuple[str | None, object]] = []
        pending: str | None = None
        children = list(node.children)
        i = 0
        while i < len(children):
            child = children[i]
            i += 1
            if child.type == "command_argument_sep":
                if node_text(child).strip() == ":" and pending is not None and args and args[-1] == (pending, None):
                    args.pop()
                continue
            if child.type == "command_parameter":
                # A parameter still pending (a switch) already stands as (name, None).
                pending = node_text(child)[1:].rstrip(":")
                args.append((pending, None))
                continue
            if child.type == "comment":
                continue
            stripped = strip(child)
            if stripped.type == "variable" and node_text(stripped).startswith("@"):
                splat = self.get_var(node_text(stripped)[1:])
                if pending is not None:
                    pending = None
                if isinstance(splat, PSHashtable):
                    args.extend((to_ps_string(k), v) for k, v in splat.items())
                else:
                    args.extend((None, v) for v in enumerate_value(splat))
                continue
            value = node_text(stripped) if stripped.type == "generic_token" else self._expressions.expr(stripped)
            if pending is not None:
                if args and args[-1] == (pending, None):
                    args.pop()
                args.append((pending, value))
                pending = None
            else:
                args.append((None, value))
        return args

    # ----- assignment -----

    def _assign(self, node: Node) -> None:
        target = strip(node.children[0])
        operator = node_text(next(c for c in node.children if c.type == "assignement_operator"))
        value_node = node.child_by_field_name("value")
        if value_node is None:
            raise unsupported(node)
        value = self.value(value_node)
        if operator != "=":
            current = self._expressions.expr(target)
            if operator == "+=":
                value = add(current, value)
            else:
                raise unsupported(node, f"the '{operator}' operator")
        if target.type == "variable":
            self._set_var(node_text(target)[1:].strip("{}"), value)
        elif target.type == "element_access":
            container = self._expressions.expr(target.named_children[0])
            key = self._expressions.expr(strip(target.named_children[1]))
            if isinstance(container, PSHashtable):  # noqa: SIM114 - kept apart so mypy narrows each type
                container[key] = value
            elif isinstance(container, list) and isinstance(key, int):
                container[key] = value
            else:
                raise unsupported(target, "index assignment on this value")
        elif target.type == "member_access":
            owner = self._expressions.expr(target.named_children[0])
            name = node_text(target.named_children[-1])
            if isinstance(owner, PSHashtable):
                owner[name] = value
            elif isinstance(owner, PropertyView) and name.casefold() == "value":
                owner.target[owner.name] = value
            elif isinstance(owner, PSObject):
                match = next((n for n in property_names(owner) if n.casefold() == name.casefold()), None)
                if match is None:
                    raise PipelineStopped(
                        PSErrorRecord(
                            message=f"The property '{name}' cannot be found on this object. Verify that the "
                            "property exists and can be set.",
                            category="InvalidOperation",
                            fully_qualified_error_id="PropertyAssignmentException",
                            exception_type="System.Management.Automation.RuntimeException",
                        )
                    )
                owner[match] = value
            else:
                raise unsupported(target, "member assignment on this value")
        else:
            raise unsupported(target, "this assignment target")

    # ----- statements inside expressions -----

    def statements_output(self, node: Node) -> list[object]:
        """Run the statements of ``$(...)`` or ``@(...)`` and return their output."""
        flow = _Flow()
        statements = node.child_by_field_name("statements")
        if statements is not None:
            self._statement(statements, flow)
        return flow.output
