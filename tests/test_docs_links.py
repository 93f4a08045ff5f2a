"""The repository stands alone: its docs and comments point nowhere outside it, and every link inside it resolves."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Not the project's own text: tools, caches, run state.
SKIP_DIRS = {
    ".git", ".venv", ".run", ".tools", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
}
# Text files whose comments may cite documents (the project's code, configuration and scripts).
SOURCE_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".ini", ".sql", ".xml", ".json"}
SOURCE_NAMES = {"Makefile", "Dockerfile", "run"}

# Documents that live next to the repository on the machine it was written on, never in it: a reader of a clone
# has none of them. Written so that this file does not match itself.
OUTSIDE = [
    (re.compile(r"\.\./" + "shared" + r"\b"), "a path into the sibling folder of notes"),
    (re.compile(r"/work/"), "an absolute path of the development machine"),
    # The word on its own, in capitals ("SPEC section 5", "SPEC's rule", "SPEC.md"); not a name like SPEC_ROUTES.
    (re.compile(r"\b" + "SPEC" + r"\b"), "the external SPEC"),
    (re.compile(r"\b(?:DESIGN|KAFKA|CONTAINERS)\.md\b"), "an external design or machine note"),
]

# The sibling folder of notes, written so that this file does not name it (tests below plant it on purpose).
OUT = ".." + "/" + "shared"

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_TARGET = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
_HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# A relative path written in running text or a code span ("../x", "../../y"), which a reader would follow.
_RELATIVE_MENTION = re.compile(r"(?<![\w./-])((?:\.\./)+[\w./-]*)")
# "docs/contract.md#the-escalation-metric" in comments and docs: a pointer from anywhere, relative to the root.
_DOCS_POINTER = re.compile(r"(?<![\w./-])(docs/[\w.-]+\.md)(?:#([\w-]+))?")


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            yield Path(directory) / name


def markdown_files(root: Path) -> list[Path]:
    return [p for p in _walk(root) if p.suffix == ".md"]


def source_files(root: Path) -> list[Path]:
    return [p for p in _walk(root) if p.suffix in SOURCE_SUFFIXES or p.name in SOURCE_NAMES]


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the Markdown outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            fence = None if fence == match.group(1) else (fence or match.group(1))
            continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers: its headings' slugs (repeats numbered -1, -2, ...) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ANCHOR.findall(line))
    return found


def link_targets(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every Markdown and HTML link outside fenced code."""
    for number, line in _prose_lines(text):
        for pattern in (_INLINE_LINK, _REFERENCE_DEF, _HTML_TARGET):
            for target in pattern.findall(line):
                yield number, target


def _inside(root: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _check_anchor(root: Path, where: str, target_file: Path, fragment: str, problems: list[str]) -> None:
    if target_file.suffix == ".md" and fragment not in anchors(target_file):
        shown = target_file.relative_to(root)
        problems.append(f"{where}: {shown} has no heading with anchor #{fragment}")


def markdown_problems(root: Path, path: Path) -> list[str]:
    """Links and paths of one Markdown file that leave the repository or lead nowhere."""
    problems: list[str] = []
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(root)
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in OUTSIDE:
            if pattern.search(line):
                problems.append(f"{rel}:{number}: refers to {what}: {line.strip()}")
    # In running text a relative path is read from the file's folder; in a code block it is relative to
    # wherever the example runs (a kustomize overlay, a shell's cwd), so only the patterns above apply there.
    for number, line in _prose_lines(text):
        for mention in _RELATIVE_MENTION.findall(line):
            if not _inside(root, path.parent / mention):
                problems.append(f"{rel}:{number}: {mention} is outside the repository")
    for number, target in link_targets(text):
        where = f"{rel}:{number}"
        if _SCHEME.match(target):
            if target.lower().startswith("file:"):
                problems.append(f"{where}: {target} is a file on some machine, not in the repository")
            continue  # a web address, not a path
        link_path, _, fragment = target.partition("#")
        if link_path.startswith("/"):
            problems.append(f"{where}: {target} is an absolute path; link relative to this file")
            continue
        resolved = (path.parent / link_path) if link_path else path
        if not _inside(root, resolved):
            problems.append(f"{where}: {target} leads outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}: {target} does not exist")
        elif fragment:
            _check_anchor(root, where, resolved, fragment, problems)
    return problems


def source_problems(root: Path, path: Path) -> list[str]:
    """References in one source file to documents outside the repository, or to docs that do not exist."""
    problems: list[str] = []
    rel = path.relative_to(root)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return problems
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{number}"
        for pattern, what in OUTSIDE:
            if pattern.search(line):
                problems.append(f"{where}: refers to {what}: {line.strip()}")
        for doc, fragment in _DOCS_POINTER.findall(line):
            target = root / doc
            if not target.is_file():
                problems.append(f"{where}: {doc} does not exist")
            elif fragment:
                _check_anchor(root, where, target, fragment, problems)
    return problems


# --- the repository ------------------------------------------------------------------------------------------

THIS_FILE = Path(__file__).resolve()


def test_the_readme_and_the_docs_are_checked() -> None:
    checked = {p.relative_to(ROOT).as_posix() for p in markdown_files(ROOT)}
    assert {"README.md", "docs/contract.md", "docs/architecture.md", "docs/operations.md"} <= checked


def test_no_markdown_links_or_refers_outside_the_repository_and_every_link_resolves() -> None:
    problems = [problem for path in markdown_files(ROOT) for problem in markdown_problems(ROOT, path)]
    assert not problems, "\n".join(problems)


def test_no_source_cites_an_outside_document_and_every_docs_pointer_resolves() -> None:
    files = [p for p in source_files(ROOT) if p.resolve() != THIS_FILE]
    assert any(p.suffix == ".py" for p in files)
    problems = [problem for path in files for problem in source_problems(ROOT, path)]
    assert not problems, "\n".join(problems)


# --- the checks themselves, on a repository made for the purpose -----------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "contract.md").write_text(
        "# The contract\n\n## The escalation metric\n\n## Notes\n\n## Notes\n\n```\n# not a heading\n```\n"
    )
    (root / "README.md").write_text("# Readme\n")
    (root / "shared").mkdir()  # a directory inside this repository is fine to link to
    (root / "shared" / "x.md").write_text("# X\n")
    return root


def _problems_of(repo: Path, text: str, name: str = "README.md") -> list[str]:
    path = repo / name
    path.write_text(text)
    return markdown_problems(repo, path)


def test_links_that_resolve_pass(repo: Path) -> None:
    text = (
        "See [the metric](docs/contract.md#the-escalation-metric), [notes](docs/contract.md#notes-1),\n"
        "[x](shared/x.md), [top](#top), [web](https://example.org/a#b).\n\n# Top\n"
        "```sh\n[not a link](nowhere.md)\n```\n"
    )
    assert _problems_of(repo, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"The contract is [`{OUT}/SPEC.md`]({OUT}/SPEC.md).", "leads outside the repository"),
        ("[up](../../elsewhere/README.md)", "leads outside the repository"),
        (f"Read `{OUT}/DESIGN.md` first.", "sibling folder"),
        ("Read ../notes/plan.txt first.", "outside the repository"),
        ("As SPEC section 5 says.", "external SPEC"),
        ("By SPEC's claim rule.", "external SPEC"),
        ("[abs](/work/shared/SPEC.md)", "absolute path"),
        ("[local](file:///etc/passwd)", "not in the repository"),
        ("[gone](docs/missing.md)", "does not exist"),
        ("[gone](docs/contract.md#no-such-heading)", "no heading with anchor #no-such-heading"),
        ("[gone](#nowhere)", "no heading with anchor #nowhere"),
        ("[fenced](docs/contract.md#not-a-heading)", "no heading with anchor #not-a-heading"),
        ("[ref]: docs/missing.md", "does not exist"),
        ('<a href="docs/missing.md">x</a>', "does not exist"),
    ],
)
def test_links_and_mentions_outside_or_nowhere_fail(repo: Path, text: str, expected: str) -> None:
    problems = _problems_of(repo, text + "\n")
    assert any(expected in problem for problem in problems), problems


def test_a_doc_may_link_up_to_the_root_but_not_past_it(repo: Path) -> None:
    assert _problems_of(repo, "[readme](../README.md)\n", name="docs/guide.md") == []
    assert _problems_of(repo, "[out](../../README.md)\n", name="docs/guide.md")


def test_source_comments_are_checked(repo: Path) -> None:
    good = repo / "good.py"
    good.write_text('"""See docs/contract.md#the-escalation-metric."""\nSPEC_ROUTES = {}  # a name, not a citation\n')
    assert source_problems(repo, good) == []
    bad = repo / "bad.py"
    bad.write_text(
        "# The metric of SPEC section 5.\n# SPEC 5: claimed unless released.\n# See SPEC §4.\n"
        "# See docs/contract.md#nowhere and docs/gone.md\n"
    )
    problems = source_problems(repo, bad)
    assert sum("external SPEC" in p for p in problems) == 3, problems
    assert any("no heading with anchor #nowhere" in p for p in problems), problems
    assert any("docs/gone.md does not exist" in p for p in problems), problems
