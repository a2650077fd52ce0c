"""The README's Python example runs as written."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "word_sorting.py").write_text((ROOT / "examples" / "word_sorting.py").read_text())
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == "verified ok ['fig', 'pear']"
    assert os.path.exists(tmp_path / "tools.db")


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_the_two_commands_are_on_the_first_screen() -> None:
    # A user on a fresh machine, and CI (.ci/run runs the second verbatim),
    # start from these two lines: they stay exactly so, before any scrolling.
    first_screen = _readme().splitlines()[:40]
    assert "bash examples/demo.sh" in "\n".join(first_screen)
    assert "bash tests/run.sh" in "\n".join(first_screen)
    assert "bash tests/run.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_exit_code_table_is_the_codes_the_code_uses() -> None:
    from toolcrib.cli.exit_codes import EXIT_CODES, STATUS_EXIT_CODES
    from toolcrib.registry import errors

    readme = _readme()
    section = readme[readme.index("## Exit codes") :]
    section = section[: section.index("\n## ", 1)]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    # 70 (a bug, TOOLCRIB_DEBUG=1) and 130 (interrupted) are the CLI's own.
    assert documented == set(EXIT_CODES) | {70, 130}
    assert set(STATUS_EXIT_CODES.values()) <= documented
    raised = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ToolcribError)
    }
    assert raised <= documented


# Markdown links and images: [text](target) or ![alt](target).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _local_targets(doc: Path) -> list[str]:
    return [t for t in _LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize(
    "doc", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "bench/README.md", "docs/trials.md", "docs/guide.md"]
)
def test_links_stay_inside_the_repository_and_resolve(doc: str) -> None:
    path = ROOT / doc
    for target in _local_targets(path):
        where = (path.parent / target.split("#")[0]).resolve()
        assert where.is_relative_to(ROOT), f"{doc} points outside the repository: {target}"
        assert where.exists(), f"{doc} links to a missing file: {target}"
    # Nor in prose: a path such as ../shared/ names something a clone lacks.
    if doc == "README.md":
        assert "../" not in path.read_text()


def test_the_readme_is_a_users_readme() -> None:
    # About 200 lines (issue 16): measurement rounds and trials live in
    # bench/README.md and docs/trials.md, the long tour in docs/guide.md.
    lines = _readme().splitlines()
    assert len(lines) <= 240, f"README.md has {len(lines)} lines"
    assert "## Benchmarks" not in _readme() and "## Trial" not in _readme()
