"""Sphinx configuration: MyST pages, autodoc of the public API, every warning an error (run with -W)."""

from __future__ import annotations

import sys
from pathlib import Path

import polyvisor

# The local extension that prints tables straight from the code (docs/_ext/polyvisor_docs.py).
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "polyvisor"
author = "polyvisor developers"
copyright = "polyvisor developers"  # Sphinx reads this exact name
release = polyvisor.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "polyvisor_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]
templates_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every reference must resolve. Intersphinx is off (builds run offline), so names from the standard library and
# third-party packages that appear in signatures cannot link anywhere; they are listed here, and nothing else is.
nitpicky = True
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "collections.abc.Callable",
        "collections.abc.Iterable",
        "collections.abc.Iterator",
        "collections.abc.Mapping",
        "collections.abc.Sequence",
        "datetime.datetime",
        "pathlib.Path",
        "os.PathLike",
        "Path",  # pathlib.Path as a dataclass field of polyvisor.storage.LocalImage shows it
        "_queue.SimpleQueue",
        "collections.abc.KeysView",
        "collections.abc.ItemsView",
        "collections.abc.Awaitable",
        "collections.abc.Generator",
        "ipaddress.IPv4Network",  # the fields of polyvisor.networks.AddressPlan
        "ipaddress.IPv4Address",
        "prometheus_client.metrics_core.Metric",
        "prometheus_client.registry.Collector",
    )
] + [
    # The TypeVar of the verb engine's steps (what a call returns).
    ("py:obj", "polyvisor.verbs.ops._T"),
    ("py:class", "polyvisor.verbs.ops._T"),
    ("py:class", "polyvisor.calls._T"),
    ("py:class", "_T"),
    # The TypeVars of the fleet's generic results and calls.
    ("py:class", "polyvisor.fleet.results.T"),
    ("py:class", "polyvisor.fleet.results.U"),
    ("py:class", "polyvisor.fleet._fleet.T"),
    # The TypeVars of polyvisor.aio's calls that return what a given callable returns.
    ("py:class", "polyvisor.aio._connection._T"),
    ("py:class", "polyvisor.aio._fleet._T"),
    # The TypeVar of polyvisor.testing.eventually: it returns what its probe returns.
    ("py:class", "polyvisor.testing.waiting.T"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"polyvisor {release}"
html_static_path: list[str] = []
