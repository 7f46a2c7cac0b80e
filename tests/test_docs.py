"""The documentation (README.md and docs/*.md) as a test subject: its offline examples run, its links resolve.

Runnable examples. A shell example that works on a bare checkout (no iSolarCloud account, no network, no
Docker, no systemd) is marked with an HTML comment on the line right before its fence, which Markdown
renderers do not show:

    <!-- offline-example -->
    ```sh
    promtool check rules prometheus/alerts.yml prometheus/rules.yml
    ```

Each marked block is one test case (id `file:line` of the fence). It runs with `bash -euo pipefail` from the
root of a fresh copy of the repository, so an example that writes files (the `sed -i` that renames the job in
the rule files) cannot change the checkout. The interpreter's bin directory (the virtual environment:
`isolarcloud-exporter`, `python`, `kubectl`) comes first on PATH, and PYTHONPATH points at the copy so the
examples run this checkout's code. External tools an example names are required as elsewhere in the suite
(`require_tool`: missing fails in CI, skips elsewhere). The block must exit 0; an example that demonstrates a
failure checks the exit status itself.

Also checked: README.md stays a front door (at most 15,000 bytes); every relative link in README.md and
docs/*.md points to an existing file, and every `#anchor` into a Markdown file to an existing heading
(GitHub's slugs); every alert in prometheus/alerts.yml has a runbook heading in docs/alerts.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
ALERTS_DOC = DOCS_DIR / "alerts.md"
ALERT_RULES = ROOT / "prometheus" / "alerts.yml"
README_MAX_BYTES = 15_000

MARKER = "<!-- offline-example -->"
SHELL_FENCES = ("```sh", "```bash", "```shell")
# Tools outside the virtual environment's Python packages that an example may call; each is looked up with
# require_tool so that a machine without it skips (and CI fails) instead of reporting a broken example.
TOOLS = ("promtool", "kubectl", "amtool")
# An example using one of these needs a daemon, privileges or the network: it must not carry the marker.
NOT_OFFLINE = re.compile(r"(?<![\w-])(docker|systemctl|journalctl|sudo|curl|wget)(?![\w-])|kubectl\s+(-n|apply|exec)")
EXAMPLE_TIMEOUT = 120
# Copying these would be slow (virtual environments) or pointless (caches, build output, git metadata).
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                                     ".mypy_cache", ".hypothesis", "build", "dist", "*.egg-info")
# Documents written on another branch at the same time; a link to one of them is accepted while it is missing.
PENDING_DOCS = {DOCS_DIR / "architecture.md"}


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------- runnable examples


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str

    @property
    def id(self) -> str:
        return f"{rel(self.path)}:{self.line}"


def extract_examples(path: Path) -> tuple[list[Example], list[str]]:
    """The marked blocks of one file, and the markers that are not followed by a shell fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    problems: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence_at = i + 1
        fence = lines[fence_at] if fence_at < len(lines) else ""
        if fence.strip() not in SHELL_FENCES:
            problems.append(f"{rel(path)}:{i + 1}: {MARKER} must be followed directly by a ```sh fence")
            continue
        indent = fence[: len(fence) - len(fence.lstrip())]
        body: list[str] = []
        for j in range(fence_at + 1, len(lines)):
            if lines[j].strip() == "```":
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
        else:
            problems.append(f"{rel(path)}:{fence_at + 1}: unclosed fence")
            continue
        examples.append(Example(path, fence_at + 1, "\n".join(body) + "\n"))
    return examples, problems


def all_examples() -> tuple[list[Example], list[str]]:
    examples: list[Example] = []
    problems: list[str] = []
    for path in markdown_files():
        found, wrong = extract_examples(path)
        examples += found
        problems += wrong
    return examples, problems


EXAMPLES, MARKER_PROBLEMS = all_examples()


def test_markers_sit_on_shell_fences():
    assert not MARKER_PROBLEMS, "\n".join(MARKER_PROBLEMS)


def test_offline_examples_exist():
    # Guards the extraction itself: a broken parser would otherwise make every example "pass" by finding none.
    assert len(EXAMPLES) >= 5, [e.id for e in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_offline_example_runs(example: Example, tmp_path: Path):
    forbidden = NOT_OFFLINE.search(example.code)
    assert forbidden is None, f"{example.id}: {forbidden.group(0)!r} cannot run offline; remove the marker"
    for tool in TOOLS:
        if re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", example.code):
            require_tool(tool)
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE, symlinks=True)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(copy), env.get("PYTHONPATH", "")] if p)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", example.code], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, check=False)
    assert result.returncode == 0, (
        f"{example.id} exited {result.returncode}\n--- example\n{example.code}"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )


# --------------------------------------------------------------------------- size and links


def test_readme_is_a_front_door():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"


FENCE_RE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN_RE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF_RE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR_RE = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """Line number and text of each line outside fenced code blocks, with inline code spans removed."""
    out: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE_RE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation other than `-` and `_`
    dropped, spaces turned into `-` (runs are kept: `a / b` becomes `a--b`)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path):
        found.update(HTML_ANCHOR_RE.findall(line))
        match = HEADING_RE.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")  # GitHub numbers repeated headings
    return found


def links(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, line in prose_lines(path):
        text = CODE_SPAN_RE.sub("", line)
        out += [(number, target) for target in INLINE_LINK_RE.findall(text)]
        out += [(number, target) for target in REFERENCE_DEF_RE.findall(text)]
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))


@pytest.mark.parametrize("path", markdown_files(), ids=rel)
def test_relative_links_resolve(path: Path):
    broken: list[str] = []
    for number, target in links(path):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{rel(path)}:{number}: {target}"
        if not dest.exists():
            if dest not in PENDING_DOCS:
                broken.append(f"{where}: no such file")
            continue
        if not dest.is_relative_to(ROOT):
            broken.append(f"{where}: outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading with anchor #{anchor} in {rel(dest)}")
    assert not broken, "\n".join(broken)


def test_api_notes_link_nothing_outside_the_repository():
    text = (DOCS_DIR / "api-notes.md").read_text(encoding="utf-8")
    assert not re.findall(r"https?://\S+", text)
    assert all(not is_external(t) for _, t in links(DOCS_DIR / "api-notes.md"))


def test_docs_name_no_module_files():
    """The package is being reorganised: the reader documents describe behaviour, not where code lives (the
    architecture document is the exception). The simulator's folder is stable."""
    pattern = re.compile(r"exporter/(?!simulator/)[\w/]+\.py")
    found = [f"{rel(p)}:{n}: {m}" for p in markdown_files() if p not in PENDING_DOCS
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             for m in pattern.findall(line)]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- the runbook


def alert_names() -> list[str]:
    groups = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def runbook_headings() -> set[str]:
    return {m.group(2).replace("`", "").strip() for _, line in prose_lines(ALERTS_DOC)
            if (m := HEADING_RE.match(line)) and m.group(1) == "###"}


def test_every_alert_has_a_runbook_entry():
    names = alert_names()
    assert names, "no alerts found in prometheus/alerts.yml"
    missing = [name for name in names if name not in runbook_headings()]
    assert not missing, f"docs/alerts.md has no `### <name>` section for {missing}"
    # The heading is the alert name alone, so links such as docs/alerts.md#isolarcloudplantfault work.
    assert {name.lower() for name in names} <= anchors(ALERTS_DOC)


def test_runbook_has_no_entry_for_a_removed_alert():
    stale = {h for h in runbook_headings() if h.startswith("Isolarcloud")} - set(alert_names())
    assert not stale, f"docs/alerts.md describes alerts that prometheus/alerts.yml no longer has: {sorted(stale)}"
