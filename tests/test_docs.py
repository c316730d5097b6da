"""The documentation site builds strictly, and its CLI reference cannot drift from the parser.

``mkdocs build --strict`` fails on any warning: a broken link or anchor (``validation:`` in ``mkdocs.yml``),
an API reference mkdocstrings cannot resolve, a docstring it cannot parse, a snippet that is missing. In CI
(``CI=true``) the docs tools are part of the ``dev`` extra, so a missing MkDocs is a failure there; on a
machine without them the build test is skipped with the command that installs them."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI_PAGE = ROOT / "docs" / "cli.md"


def _docs_tools_missing() -> str | None:
    tools = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    missing = [m for m in tools if not _has(m)]
    return ", ".join(missing) or None


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def test_docs_build_strict(tmp_path):
    missing = _docs_tools_missing()
    if missing:
        message = f'the docs tools are not installed ({missing}): pip install -e ".[docs]"'
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)
    assert (site / "index.html").is_file() and (site / "api" / "index.html").is_file()


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, parser)`` for the top-level parser and every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_cli_reference_names_every_command_and_flag():
    """Every `dynaflow` subcommand has a heading in docs/cli.md and every long flag of its parser (aliases
    included) appears in that command's section, so the reference cannot drift from the parser."""
    from dynaflow.cli import build_parser

    page = CLI_PAGE.read_text()
    sections = {}  # "dynaflow data gaits" -> its section's text (up to the next heading of any level)
    for chunk in page.split("\n#")[1:]:
        title, _, body = chunk.lstrip("#").strip().partition("\n")
        sections[title.strip().strip("`")] = body
    missing = []
    for path, parser in _parsers(build_parser()):
        name = " ".join(("dynaflow", *path))
        if name not in sections:
            missing.append(f"no section '## `{name}`'")
            continue
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and f"`{flag}`" not in sections[name]:
                    missing.append(f"{name}: {flag}")
    assert not missing, "docs/cli.md lacks:\n" + "\n".join(missing)
    documented = {title for title in sections if title.startswith("dynaflow")}
    commands = {" ".join(("dynaflow", *path)) for path, _ in _parsers(build_parser())}
    assert documented <= commands, f"docs/cli.md documents commands that are gone: {documented - commands}"


def _anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings, as MkDocs (and GitHub) make them for these headings."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    titles = [re.sub(r"[^\w\s-]", "", t).strip().lower() for t in re.findall(r"^#{1,6} (.+)$", text, re.M)]
    return {re.sub(r"\s+", "-", t) for t in titles}


def test_readme_links_into_the_docs_resolve():
    """The README is outside the site, so MkDocs does not check it: its links into docs/ (and to the
    repository's files) must name files that exist and, with a #fragment, a heading of that page. Images
    are left out (the demo report's picture is made by a demo run)."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not link.startswith(("http://", "https://", "#"))]
    assert sum(link.startswith("docs/") for link in local) >= 15  # every page, one click from the README
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    linked = {link.partition("#")[0] for link in local}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"
    for link in local:
        target, _, fragment = link.partition("#")
        assert (ROOT / target).exists(), link
        if fragment:
            assert fragment in _anchors((ROOT / target).read_text()), link
