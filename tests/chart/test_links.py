"""The repository stands alone: no tracked file links or points outside it.

Users get the repository, nothing beside it. Every relative Markdown link must
resolve to a file or directory inside the repository, and no tracked file may
name a path beside it (the contract lives in docs/CONTRACT.md).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import ROOT

TEXT_SUFFIXES = {".md", ".rs", ".py", ".yaml", ".yml", ".tpl", ".toml", ".sh", ".txt", ".json", ".js", ".mjs"}
SKIP_PARTS = {".git", "target", ".venv", "node_modules", "golden"}
# Built from pieces so this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"|/work/" + r"(shared|main|wt|briefs)\b")
# [text](target) and [label]: target
INLINE_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]\n]+\]:\s*(\S+)", re.MULTILINE)
CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def tracked_files() -> list[Path]:
    """The files git tracks (what a clone has); a plain walk when this is no git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True, timeout=30
        ).stdout
        paths = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in ROOT.rglob("*") if p.is_file()]
    return [p for p in paths if p.is_file() and not SKIP_PARTS & set(p.relative_to(ROOT).parts)]


def text_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix in TEXT_SUFFIXES or p.name in {"Makefile", "Dockerfile"}]


def link_targets(markdown: str) -> list[str]:
    prose = INLINE_CODE.sub("", CODE_BLOCK.sub("", markdown))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("#")


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in link_targets(path.read_text(errors="replace")):
        if is_external(target):
            continue
        if target.startswith("/"):
            problems.append(f"{target} (absolute path)")
            continue
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(ROOT.resolve()):
            problems.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            problems.append(f"{target} (no such file)")
    return problems


def test_markdown_links_stay_inside_the_repository() -> None:
    docs = [p for p in tracked_files() if p.suffix == ".md"]
    assert any(p.name == "CONTRACT.md" for p in docs), "docs/CONTRACT.md is missing"
    problems = {str(p.relative_to(ROOT)): broken_links(p) for p in docs}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"links that leave the repository or lead nowhere: {problems}"


def test_no_file_names_a_path_beside_the_repository() -> None:
    hits = []
    for path in text_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "paths outside the repository (use docs/CONTRACT.md):\n" + "\n".join(hits)


def test_the_checks_catch_what_they_should() -> None:
    """The corpus of refused links: each must be reported, the good ones not."""
    doc = ROOT / "docs" / "CONTRACT.md"
    assert broken_links(doc) == []
    bad = "[a](../../x.md) [b](/etc/passwd) [c](no-such.md) [d]: ../" + "shared/C.md\n"
    good = "[e](README.md) [f](https://example.org/x) [g](#top) `[h](../nowhere)`\n"
    probe = ROOT / "docs" / ".links-probe.md"
    try:
        probe.write_text(bad + good)
        assert len(broken_links(probe)) == 4, broken_links(probe)
    finally:
        probe.unlink(missing_ok=True)
    assert OUTSIDE.search("see ../" + "shared/CONTRACT.md")
    assert not OUTSIDE.search("see docs/CONTRACT.md")
