"""The documentation: it builds with warnings as errors, and it cannot drift from the code it describes."""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

import polyvisor
from polyvisor import hookspecs, png
from polyvisor.model import Feature, PowerState
from polyvisor.transitions import SETTLED_STATES, VERBS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "examples" / "quickstart.py"
IMAGE_TO_SSH = DOCS / "examples" / "image_to_ssh.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML docs exactly as CI does: every warning is an error."""
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    assert "WARNING" not in result.stderr, result.stderr
    return out


def _text(page: Path) -> str:
    """The visible text of a rendered page, whitespace collapsed."""
    raw = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))
    return re.sub(r"\s+", " ", html.unescape(raw))


class _TableReader(HTMLParser):
    """Collects the body rows (cell texts) of the tables with a given class."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.rows: list[list[str]] = []
        self._depth = 0  # >0 while inside a wanted table
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self._depth or self.css_class in (dict(attrs).get("class") or "").split()):
            self._depth += 1
        elif self._depth and tag == "tbody":
            self._in_body = True
        elif self._depth and self._in_body and tag == "tr":
            self.rows.append([])
        elif self._depth and self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table_rows(page: Path, css_class: str) -> list[list[str]]:
    reader = _TableReader(css_class)
    reader.feed(page.read_text(encoding="utf-8"))
    return reader.rows


def _markdown_table(source: Path, label: str) -> list[list[str]]:
    """Rows of the Markdown table that follows the MyST target ``(label)=``, backticks stripped."""
    lines = source.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=")
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if not line.strip() and not rows:
            continue
        if not line.startswith("|"):
            break
        cells = [cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")]
        rows.append(cells)
    _header, separator, *body = rows
    assert set(separator[0]) <= {"-", ":"}, f"({label})= is not followed by a table"
    return body


def _hookspecs() -> Iterator[tuple[str, inspect.Signature]]:
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, f"{hookspecs.PROJECT_NAME}_spec"):
            yield name, inspect.signature(function)


def test_the_docs_build_without_warnings(built: Path) -> None:
    pages = ("index", "quickstart", "image-to-ssh", "fleet", "ansible", "uris", "contract", "errors", "api")
    for page in (*pages, "writing-a-backend", "libvirt", "hyperv"):
        assert (built / f"{page}.html").is_file(), f"{page}.md was not built"


def test_every_hookspec_is_documented_with_its_signature(built: Path) -> None:
    specs = dict(_hookspecs())
    assert specs, "no hookspec found: the detection in this test is broken"
    guide = _text(built / "writing-a-backend.html")
    api = (built / "api.html").read_text(encoding="utf-8")
    for name, signature in specs.items():
        documented = f"{name}({', '.join(signature.parameters)})"
        assert documented in guide, f"writing-a-backend.md does not document {documented}"
        assert f'id="polyvisor.hookspecs.{name}"' in api, f"api.md does not autodoc {name}"


def test_every_public_name_is_documented_in_the_api_reference(built: Path) -> None:
    page = built / "api.html"
    markup = page.read_text(encoding="utf-8")
    text = _text(page)
    for name in polyvisor.__all__:
        obj = getattr(polyvisor, name)
        home = getattr(obj, "__module__", "polyvisor")
        anchors = {f'id="polyvisor.{name}"', f'id="{home}.{name}"'}
        assert any(anchor in markup for anchor in anchors), f"api.md has no entry for polyvisor.{name}"
        assert name in text


def test_all_is_sorted_and_complete() -> None:
    def ruff_order(name: str) -> tuple[int, str]:
        # RUF022's isort-style order: CONSTANTS, then Classes, then functions.
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert polyvisor.__all__ == sorted(polyvisor.__all__, key=ruff_order)
    assert len(set(polyvisor.__all__)) == len(polyvisor.__all__)
    public = {
        name
        for name, obj in vars(polyvisor).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("polyvisor")
    }
    assert public - set(polyvisor.__all__) == set(), "public but missing from polyvisor.__all__"
    assert set(polyvisor.__all__) - set(vars(polyvisor)) == set(), "listed in __all__ but not defined"


def test_the_verb_table_is_the_one_the_core_enforces(built: Path) -> None:
    rows = _table_rows(built / "contract.html", "polyvisor-verbs")
    assert [row[0] for row in rows] == list(VERBS)
    for name, accepts, target, feature, _ in rows:
        verb = VERBS[name]
        listed = set(accepts.replace(" and every transitional state", "").split(", "))
        assert listed == {state.value for state in verb.accepts & SETTLED_STATES}, name
        assert ("every transitional state" in accepts) == bool(verb.accepts - SETTLED_STATES), name
        assert target == (verb.target.value if verb.target else "(unchanged / gone)"), name
        assert feature == (verb.feature.value if verb.feature else "always"), name


def test_the_verb_table_in_the_markdown_source_is_the_one_the_code_renders() -> None:
    # A reader of contract.md sees the table; the build checks it too, this test says so without building.
    spec = importlib.util.spec_from_file_location("polyvisor_docs", DOCS / "_ext" / "polyvisor_docs.py")
    assert spec is not None
    assert spec.loader is not None
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    lines = (DOCS / "contract.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(":::{polyvisor-verbs}") + 1
    written = "\n".join(lines[start : lines.index(":::", start)]).strip()
    assert written == extension.verb_table_markdown(), "run python docs/_ext/polyvisor_docs.py for the table"


def test_every_verb_says_what_each_backend_calls() -> None:
    rows = _markdown_table(DOCS / "contract.md", "verb-mapping")
    assert [row[0] for row in rows] == list(VERBS)


def test_every_power_state_is_in_the_states_table(built: Path) -> None:
    rows = _markdown_table(DOCS / "contract.md", "states-table")
    assert [row[0] for row in rows] == [state.value for state in PowerState]
    text = _text(built / "contract.html")
    assert all(state.value in text for state in PowerState)


def test_every_feature_is_documented_in_the_contract(built: Path) -> None:
    rows = _markdown_table(DOCS / "contract.md", "feature-table")
    assert [(row[0], row[1]) for row in rows] == [(feature.value, feature.name) for feature in Feature]
    assert all(row[2] for row in rows), "a feature without a description"
    text = _text(built / "contract.html")
    assert all(feature.value in text for feature in Feature)


def test_the_ensure_plans_cover_every_settled_state(built: Path) -> None:
    rows = _table_rows(built / "contract.html", "polyvisor-ensure-plans")
    assert sorted(row[0] for row in rows) == sorted(state.value for state in SETTLED_STATES)
    plans = {row[0]: row[1:] for row in rows}
    # Spot checks of the contract's promises: lossless without force, lossy shortcuts only with it.
    assert plans["running"][1] == "shutdown; force: stop"
    assert plans["saved"][1] == "start → shutdown; force: discard_saved_state"
    assert plans["stopped"][0] == "start"


def _require_backend(module: str) -> None:
    try:
        __import__(module)
    except ImportError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not importable on CI: {error}")
        pytest.skip(f"{module} is not importable: {error}")


def _run_quickstart(uri: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, str(QUICKSTART), uri],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _assert_walked(output: str) -> None:
    states = [re.match(r"(\w+)\s+(?:->|\S+ \S+:)\s*(\w+) \(", line) for line in output.splitlines()[1:]]
    observed = [(match.group(1), match.group(2)) for match in states if match]
    assert observed == [
        ("created", "stopped"),
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("save", "saved"),
        ("start", "running"),
        ("shutdown", "stopped"),
    ], output
    assert "snapshot  -> ['before-save']" in output
    assert "labels    -> {'purpose': 'quickstart'}" in output
    assert output.rstrip().endswith("delete    -> exists: False")


def test_the_quickstart_script_runs_on_the_libvirt_test_driver() -> None:
    _require_backend("polyvisor_libvirt.backend")
    _assert_walked(_run_quickstart("test:///default"))


def _documented_block(source: Path, label: str) -> list[str]:
    """The lines of the fenced block that follows the MyST target ``(label)=``."""
    lines = source.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=") + 2
    return lines[start : lines.index("```", start)]


def test_the_image_to_ssh_example_prints_what_the_page_says_and_keeps_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(b"a raw base image\n" + bytes(3 * 1024 * 1024))
    before = (base.read_bytes(), base.stat().st_mtime_ns)
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0dGVzdGtleQ docs@polyvisor\n")
    result = subprocess.run(
        [sys.executable, str(IMAGE_TO_SSH), "memory:///image-to-ssh", str(base), str(key)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == _documented_block(DOCS / "image-to-ssh.md", "image-to-ssh-output")
    assert (base.read_bytes(), base.stat().st_mtime_ns) == before


@pytest.mark.loopback
@pytest.mark.parametrize("scheme", ["hyperv", "hyperv+winrm"])
def test_the_same_quickstart_script_runs_on_the_loopback_hyperv_host(tmp_path: Path, scheme: str) -> None:
    _require_backend("polyvisor_hyperv.backend")
    _require_backend("polyvisor_hyperv_loopback.engine")
    from polyvisor_hyperv_loopback import LoopbackHost

    password = "Docs-Quickstart-1"
    with LoopbackHost("Administrator", password, https=True, state_dir=tmp_path) as host:
        uri = f"{scheme}://Administrator@127.0.0.1:{host.port}/?ca={host.ca_path}"
        output = _run_quickstart(uri, POLYVISOR_PASSWORD=password)
    _assert_walked(output)
    assert password not in output


def test_every_test_the_hyperv_fidelity_ledger_names_exists() -> None:
    """Each row of the ledger names the tests that pin it; a renamed or deleted test must not leave it dangling."""
    root = Path(__file__).resolve().parents[1]
    ledger = (root / "docs" / "hyperv-fidelity.md").read_text(encoding="utf-8")
    rows = [line for line in ledger.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    named = 0
    missing = []
    for row in rows[1:]:
        pinned = row.strip().strip("|").split(" | ")[-1]
        current = None
        for match in re.finditer(r"((?:plugins|tests)/[\w./-]+\.py)?::(\w+)", pinned):
            path, name = match.group(1), match.group(2)
            current = path or current
            assert current is not None, f"a test without its file in: {row[:80]}"
            source = root / current
            named += 1
            if not source.exists() or not re.search(rf"def {name}\b", source.read_text(encoding="utf-8")):
                missing.append(f"{current}::{name}")
    assert named > 60, "the ledger names the tests that pin its rows"
    assert missing == []


def test_the_fleet_example_prints_what_the_fleet_page_shows() -> None:
    _require_backend("polyvisor_libvirt.backend")
    page = (DOCS / "fleet.md").read_text(encoding="utf-8")
    shown = page.split("It prints:\n\n```text\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "fleet.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(shown), result.stdout


def test_the_watching_example_prints_what_the_metrics_page_shows() -> None:
    page = (DOCS / "metrics.md").read_text(encoding="utf-8")
    shown = page.split("It prints:\n\n```text\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "watching.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == shown


def test_the_screen_example_prints_what_the_screen_page_shows(tmp_path: Path) -> None:
    out = tmp_path / "screen.png"
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / "screen.py"), "memory:///screen", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == _documented_block(DOCS / "screen.md", "screen-output")
    assert png.decode(out.read_bytes()).width == 640
    assert "v1ewer" not in result.stdout


def test_the_architectures_table_is_the_machines_the_libvirt_backend_gives() -> None:
    _require_backend("polyvisor_libvirt.machines")
    from polyvisor.model import Architecture
    from polyvisor_libvirt.machines import MACHINES

    rows = {row[0]: row[1:] for row in _markdown_table(DOCS / "architectures.md", "architectures")}
    assert sorted(rows) == sorted(arch.value for arch in Architecture), "one row per architecture a spec can name"
    for arch, (machine, firmware, buses, uefi, lacks, _ci) in rows.items():
        expected = MACHINES[arch]
        assert machine == expected.name, arch
        assert firmware == expected.firmware, arch
        assert buses == ", ".join(sorted(bus.value for bus in expected.disk_buses)), arch
        assert uefi == ("yes" if expected.uefi else "no"), arch
        assert lacks == (", ".join(sorted(feature.value for feature in expected.lacks)) or "-"), arch
    booted = {arch for arch, row in rows.items() if row[-1].startswith("yes")}
    assert booted == {"x86_64", "aarch64", "ppc64le", "s390x", "riscv64"}
