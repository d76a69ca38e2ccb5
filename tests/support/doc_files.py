"""The project's documents as the docs tests read them: which files, their fenced blocks and inline code spans."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)  # a fenced block, possibly indented in a list
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")  # one inline code span


def documents() -> list[Path]:
    """README.md, CONTRIBUTING.md, BENCHMARKS.md and every page under docs/ (not CHANGELOG.md: a record of
    changes names what is gone)."""
    top = [ROOT / name for name in ("README.md", "CONTRIBUTING.md", "BENCHMARKS.md") if (ROOT / name).is_file()]
    return top + sorted((ROOT / "docs").rglob("*.md"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    """A fenced block: its language (empty when none) and text, without its indentation."""

    path: Path
    lang: str
    text: str


def blocks(path: Path) -> list[Block]:
    found = []
    for indent, lang, text in BLOCK.findall(path.read_text()):
        lines = [line[len(indent) :] if line.startswith(indent) else line for line in text.splitlines()]
        found.append(Block(path, lang, "\n".join(lines)))
    return found


def prose(path: Path) -> str:
    """The document without its fenced blocks."""
    return BLOCK.sub("", path.read_text())


def paragraphs(path: Path) -> list[str]:
    """The prose in paragraphs (separated by blank lines); inline code spans stay in them."""
    return [p for p in re.split(r"\n\s*\n", prose(path)) if p.strip()]


def inline_spans(text: str) -> list[str]:
    return INLINE.findall(text)
