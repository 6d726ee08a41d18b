"""Tables printed from the code itself, so the contract page cannot drift from what the core enforces.

``{polyvisor-verbs}`` holds the table of :data:`polyvisor.transitions.VERBS`, written out in the Markdown so that a
reader of the source sees it too; the build fails when it differs from the code (``python docs/_ext/polyvisor_docs.py``
prints it). ``{polyvisor-ensure-plans}`` prints the plans ``VM.ensure`` follows, by walking the same step function the
core uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from polyvisor.model import PowerState
from polyvisor.transitions import SETTLED_STATES, VERBS

# The docs print the very plan the core follows, rather than a copy that could disagree.
from polyvisor.verbs.ensure import ENSURE_TARGETS, next_step

Cell: TypeAlias = str | nodes.Node


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], classes: Sequence[str]) -> nodes.table:
    table = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=len(headers))
    table += group
    for _ in headers:
        group += nodes.colspec(colwidth=10)
    head = nodes.thead()
    group += head
    head += _row(headers)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row)
    return table


def _row(cells: Sequence[Cell]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        if isinstance(cell, nodes.paragraph):
            entry += cell
        elif isinstance(cell, nodes.Node):
            entry += nodes.paragraph("", "", cell)
        else:
            entry += nodes.paragraph(cell, cell)
        row += entry
    return row


VERB_HEADERS = ("verb", "accepts (settled states)", "target", "capability", "on a transitional state")


def _markdown_states(states: frozenset[PowerState]) -> str:
    return ", ".join(f"`{state.value}`" for state in PowerState if state in states)


def verb_table_markdown() -> str:
    """The verb table as Markdown, one row per verb of :data:`~polyvisor.transitions.VERBS`: the text
    ``docs/contract.md`` must hold inside its ``{polyvisor-verbs}`` directive."""
    lines = [f"| {' | '.join(VERB_HEADERS)} |", f"|{'---|' * len(VERB_HEADERS)}"]
    for verb in VERBS.values():
        accepts = _markdown_states(verb.accepts & SETTLED_STATES)
        if verb.accepts - SETTLED_STATES:
            accepts += " and every transitional state"
        cells = [
            f"`{verb.name}`",
            accepts,
            f"`{verb.target.value}`" if verb.target else "(unchanged / gone)",
            f"`{verb.feature.value}`" if verb.feature else "always",
            "waits for it to settle" if verb.waits_out_transitions else "acts at once",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


class VerbTable(SphinxDirective):
    """The verb table written in the Markdown source (so a reader of the file sees it too), checked against
    :data:`polyvisor.transitions.VERBS`: a table that differs from :func:`verb_table_markdown` fails the build."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        written = "\n".join(line.rstrip() for line in self.content).strip()
        expected = verb_table_markdown()
        if written != expected:
            raise self.error(
                "the verb table differs from polyvisor.transitions.VERBS; replace the directive's content with the "
                f"output of `python docs/_ext/polyvisor_docs.py`:\n{expected}"
            )
        parsed = self.parse_content_to_nodes()
        tables = [node for top in parsed for node in top.findall(nodes.table)]
        if len(tables) != 1:
            raise self.error(f"the directive holds {len(tables)} tables, not one")
        tables[0]["classes"].append("polyvisor-verbs")
        return parsed


def _plan(current: PowerState, target: PowerState, *, force: bool) -> list[str] | None:
    steps: list[str] = []
    state = current
    while state is not target:
        step = next_step(state, target, force)
        if step is None or len(steps) > 8:
            return None
        steps.append(step)
        # A verb without a target of its own (none appear in plans today) would leave the state unchanged.
        state = VERBS[step].target or state
    return steps


def _describe(steps: list[str] | None) -> str:
    if steps is None:
        return "InvalidStateError"
    return " → ".join(steps) if steps else "nothing"


class EnsurePlanTable(SphinxDirective):
    """Print what ``ensure(target)`` does from every settled state, with and without ``force``."""

    def run(self) -> list[nodes.Node]:
        rows: list[list[Cell]] = []
        for current in (state for state in PowerState if state in SETTLED_STATES):
            row: list[Cell] = [_literal(current.value)]
            for target in ENSURE_TARGETS:
                plain = _describe(_plan(current, target, force=False))
                forced = _describe(_plan(current, target, force=True))
                row.append(plain if plain == forced else f"{plain}; force: {forced}")
            rows.append(row)
        headers = ["from \\ ensure", *(target.value for target in ENSURE_TARGETS)]
        return [_table(headers, rows, ["polyvisor-ensure-plans"])]


def _dataclass_defaults(
    app: Sphinx, what: str, name: str, obj: object, options: object, signature: str | None, annotation: str | None
) -> tuple[str | None, str | None] | None:
    # A dataclass field with a default_factory renders as "=<factory>", which is not Python: Sphinx would then
    # split the signature at every comma, including those inside "Mapping[str, str]".
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), annotation
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the signature fix."""
    app.connect("autodoc-process-signature", _dataclass_defaults)
    app.add_directive("polyvisor-verbs", VerbTable)
    app.add_directive("polyvisor-ensure-plans", EnsurePlanTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    print(verb_table_markdown())
