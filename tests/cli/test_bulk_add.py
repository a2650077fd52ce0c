"""Bulk registration: `toolcrib add` over several files, a directory, or a
JSONL/CSV table; a per-tool report (text and --json), each tool all or
nothing, exit 0 only when every tool was admitted (2 otherwise), --namespace,
and unrelated tools that share a name refused unless --as-new-version."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from toolcrib.cli import cli
from toolcrib.registry.errors import ConflictError

from toolcrib import Registry

SORT = '''
def sort_words(text: str) -> str:
    """Sort words."""
    return " ".join(sorted(text.split()))
'''
# Shares the entrypoint name with SORT, and nothing else.
OTHER_SORT = '''
def sort_words(numbers: list[int], reverse: bool) -> list[int]:
    """Sort numbers, largest first when asked."""
    result = []
    for n in numbers:
        position = 0
        while position < len(result) and (result[position] > n if reverse else result[position] < n):
            position += 1
        result.insert(position, n)
    return result
'''
NEEDS_NUMPY = '''
import numpy as np

def mean(xs: list[float]) -> float:
    """Mean."""
    return float(np.mean(xs))
'''
USES_PI = '''
def area(r: float) -> float:
    """Circle area."""
    return pi * r * r
'''


def _run(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), "add", *args])


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_sort.py").write_text(SORT)
    (lib / "a_sort.tests.json").write_text('[{"args": {"text": "b a"}, "expected": "a b"}]')
    (lib / "b_mean.py").write_text(NEEDS_NUMPY)
    (lib / "c_sort_numbers.py").write_text(OTHER_SORT)
    (lib / "d_area.py").write_text(USES_PI)
    (lib / "__init__.py").write_text("")
    (lib / "notes.txt").write_text("not a tool")
    return lib


def test_a_directory_with_a_collision_and_a_missing_import(tmp_path: Path) -> None:
    done = _run(tmp_path, str(_library(tmp_path)), "--json")
    assert done.exit_code == 2, done.output
    report = json.loads(done.stdout)
    assert (report["admitted"], report["refused"]) == (1, 3)
    by_file = {Path(t["source"]).name: t for t in report["tools"]}
    assert sorted(by_file) == ["a_sort.py", "b_mean.py", "c_sort_numbers.py", "d_area.py"]
    assert by_file["a_sort.py"]["admitted"] and by_file["a_sort.py"]["ref"] == "sort_words@1.0.0"
    assert by_file["a_sort.py"]["tests"] == 1  # a_sort.tests.json beside it
    assert "module 'numpy'" in by_file["b_mean.py"]["error"] and by_file["b_mean.py"]["exit_code"] == 2
    assert "unrelated tool" in by_file["c_sort_numbers.py"]["error"]
    assert "--as-new-version" in by_file["c_sort_numbers.py"]["error"]
    assert "name 'pi'" in by_file["d_area.py"]["error"]
    # Refused tools left nothing behind; the admitted one is whole.
    with Registry(tmp_path / "r.db") as reg:
        assert [t.ref for t in reg.list()] == ["sort_words@1.0.0"]
        assert len(reg.get("sort_words").tests) == 1


def test_text_report_and_progress_on_stderr(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), "add", str(_library(tmp_path))])
    assert done.exit_code == 2
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("added") and "sort_words@1.0.0" in lines[0]
    assert all(line.startswith("refused") for line in lines[1:])
    assert "1 admitted, 3 refused" in done.stderr
    assert "adding" in done.stderr  # the progress bar


def test_allow_missing_namespace_and_as_new_version(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    done = _run(tmp_path, str(lib), "--namespace", "corpus", "--allow-missing", "--as-new-version", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["refused"] == 0
    refs = [t["ref"] for t in report["tools"]]
    assert refs == ["corpus_sort_words@1.0.0", "corpus_mean@1.0.0", "corpus_sort_words@2.0.0", "corpus_area@1.0.0"]
    warned = {Path(t["source"]).name: t["notes"] for t in report["tools"]}
    assert any("numpy" in n for n in warned["b_mean.py"])
    # Again: everything is already there.
    again = json.loads(
        _run(tmp_path, str(lib), "--namespace", "corpus", "--allow-missing", "--as-new-version", "--json").stdout
    )
    assert [t["created"] for t in again["tools"]] == [False] * 4


def test_related_major_versions_need_no_flag(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db", actor="t") as reg:
        reg.add(SORT)
        # Another signature, the same body: the tool changed, a major version.
        changed = SORT.replace("text: str", "text: str, sep: str")
        assert reg.add(changed).tool.version == "2.0.0"
        with pytest.raises(ConflictError, match="unrelated tool"):
            reg.add(OTHER_SORT)
        assert reg.add(OTHER_SORT, as_new_version=True).tool.version == "3.0.0"


def test_several_files(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    done = _run(tmp_path, str(lib / "a_sort.py"), str(lib / "d_area.py"), "--json")
    assert done.exit_code == 2
    assert [t["admitted"] for t in json.loads(done.stdout)["tools"]] == [True, False]


@pytest.mark.network
def test_a_jsonl_table(tmp_path: Path) -> None:
    rows = [
        {
            "source": SORT,
            "name": "words",
            "tests": [{"args": {"text": "b a"}, "expected": "a b"}],
            "metadata": {"task": "sorting", "id": 7},
        },
        {"source": USES_PI},
        {"source": "import six\n\ndef py3() -> bool:\n    return bool(six.PY3)\n", "requires": ["six"]},
    ]
    table = tmp_path / "tools.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n\nnot json\n" + json.dumps({"name": "x"}) + "\n")
    done = _run(tmp_path, str(table), "--json")
    assert done.exit_code == 2, done.output
    tools = json.loads(done.stdout)["tools"]
    assert [t["source"] for t in tools] == [f"{table}:{n}" for n in (1, 2, 3, 5, 6)]
    assert [t["admitted"] for t in tools] == [True, False, True, False, False]
    assert tools[0]["ref"] == "words@1.0.0" and tools[0]["tests"] == 1
    assert tools[2]["requires"] == ["six"] and tools[2]["policy"] == "plain" and tools[2]["lock"]
    assert "not JSON" in tools[3]["error"] and "source" in tools[4]["error"]
    with Registry(tmp_path / "r.db") as reg:
        assert reg.get("words").provenance.metadata == {"task": "sorting", "id": "7"}
        assert [p.name.lower() for p in reg.get("py3").lock.packages] == ["six"]  # type: ignore[union-attr]


def test_a_csv_table(tmp_path: Path) -> None:
    table = tmp_path / "tools.csv"
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["name", "source", "tests", "metadata"])
        writer.writeheader()
        writer.writerow(
            {
                "name": "csv_sort",
                "source": SORT,
                "tests": '[{"args": {"text": "c b"}, "expected": "b c"}]',
                "metadata": '{"origin": "csv"}',
            }
        )
        writer.writerow({"name": "csv_area", "source": USES_PI, "tests": "", "metadata": ""})
        writer.writerow({"name": "bad_tests", "source": SORT, "tests": "[{", "metadata": ""})
    done = _run(tmp_path, str(table), "--json")
    assert done.exit_code == 2
    tools = json.loads(done.stdout)["tools"]
    assert [t["admitted"] for t in tools] == [True, False, False]
    assert tools[0]["ref"] == "csv_sort@1.0.0" and tools[0]["tests"] == 1
    assert "column 'tests' is not JSON" in tools[2]["error"]
    missing_source = tmp_path / "nosource.csv"
    missing_source.write_text("name,code\nx,y\n")
    refused = _run(tmp_path, str(missing_source))
    assert refused.exit_code == 2 and "'source' column" in refused.output


def test_options_that_name_one_tool_are_refused_in_bulk(tmp_path: Path) -> None:
    done = _run(tmp_path, str(_library(tmp_path)), "--name", "x")
    assert done.exit_code == 2 and "--name" in done.output
    assert not (tmp_path / "r.db").exists()  # refused before the registry was opened


@pytest.mark.network
@pytest.mark.slow
def test_a_prelude_library_registers_as_it_is_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus' shape: tools that use sympy's names after one shared
    `from sympy import *`, registered as they are with a stored prelude that
    brings the requirement, then verified in the sandbox."""
    monkeypatch.setenv("TOOLCRIB_CACHE", str(tmp_path / "cache"))
    lib = tmp_path / "mathlib"
    lib.mkdir()
    (lib / "solve.py").write_text(
        'def solve_linear(a: int, b: int) -> str:\n    """Solve a*x + b = 0."""\n'
        '    x = Symbol("x")\n    return str(solve(a * x + b, x)[0])\n'
    )
    (lib / "solve.tests.json").write_text('[{"args": {"a": 2, "b": -4}, "expected": "2"}]')
    (lib / "square.py").write_text(
        'def expand_square(expr: str) -> str:\n    """Expand (expr)**2."""\n'
        "    return str(expand(sympify(expr) ** 2))\n"
    )
    (lib / "square.tests.json").write_text('[{"args": {"expr": "x+1"}, "expected": "x**2 + 2*x + 1"}]')
    header = tmp_path / "header.py"
    header.write_text("from sympy import *\n")
    runner = CliRunner()
    base = ["--registry", str(tmp_path / "r.db")]
    # Without the prelude, the tools' names are undefined: refused.
    bare = runner.invoke(cli, [*base, "add", str(lib), "--json"])
    assert bare.exit_code == 2 and json.loads(bare.stdout)["refused"] == 2
    assert (
        runner.invoke(cli, [*base, "prelude", "add", "mathlib", str(header), "--requires", "sympy>=1.12"]).exit_code
        == 0
    )
    done = runner.invoke(cli, [*base, "add", str(lib), "--prelude", "mathlib", "--namespace", "mathlib", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [t["ref"] for t in report["tools"]] == ["mathlib_solve_linear@1.0.0", "mathlib_expand_square@1.0.0"]
    assert all(t["requires"] == ["sympy>=1.12"] and t["prelude"] for t in report["tools"])
    assert report["tools"][0]["lock"] == report["tools"][1]["lock"]  # one resolution, one lock
    with Registry(tmp_path / "r.db") as reg:
        for ref in ("mathlib_solve_linear", "mathlib_expand_square"):
            verdict = reg.verify(ref)
            assert verdict.status == "verified", verdict.cases
        assert reg.call("mathlib_expand_square", {"expr": "y-2"}).result == "y**2 - 4*y + 4"


# SORT with another signature and the same body: on its own, a major version of SORT.
SORT_WITH_SEP = SORT.replace("text: str", "text: str, sep: str")


def test_one_run_holds_one_tool_per_name(tmp_path: Path) -> None:
    """Two tools of one library (or two rows of a table) that share a name:
    the second would quietly become sort_words@2.0.0 and replace the first.
    It is refused, naming where the first came from."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_sort.py").write_text(SORT)
    (lib / "b_sort_with_sep.py").write_text(SORT_WITH_SEP)
    done = _run(tmp_path, str(lib), "--json")
    assert done.exit_code == 2, done.output
    by_file = {Path(t["source"]).name: t for t in json.loads(done.stdout)["tools"]}
    assert by_file["a_sort.py"]["ref"] == "sort_words@1.0.0"
    refused = by_file["b_sort_with_sep.py"]
    assert not refused["admitted"] and refused["exit_code"] == ConflictError.exit_code
    assert "already admitted from" in refused["error"] and "a_sort.py" in refused["error"]
    assert "sort_words@2.0.0" in refused["error"] and "--as-new-version" in refused["error"]
    with Registry(tmp_path / "r.db") as reg:
        assert [t.ref for t in reg.list()] == ["sort_words@1.0.0"]
        assert reg.get("sort_words").source == SORT


def test_as_new_version_lets_one_run_add_versions_of_a_name(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_sort.py").write_text(SORT)
    (lib / "b_sort_with_sep.py").write_text(SORT_WITH_SEP)
    done = _run(tmp_path, str(lib), "--as-new-version", "--json")
    assert done.exit_code == 0, done.output
    assert [t["ref"] for t in json.loads(done.stdout)["tools"]] == ["sort_words@1.0.0", "sort_words@2.0.0"]


def test_a_name_from_an_earlier_run_still_takes_a_new_version(tmp_path: Path) -> None:
    """Only names admitted in the same run are held: a later run's change of
    a stored tool is a new version as before, and a run that meets the same
    tool twice (identical content) admits it once."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_sort.py").write_text(SORT)
    assert _run(tmp_path, str(lib), "--json").exit_code == 0
    (lib / "a_sort.py").write_text(SORT_WITH_SEP)
    (lib / "b_sort_again.py").write_text(SORT_WITH_SEP)
    done = _run(tmp_path, str(lib), "--json")
    assert done.exit_code == 0, done.output
    tools = json.loads(done.stdout)["tools"]
    assert [(t["ref"], t["created"]) for t in tools] == [("sort_words@2.0.0", True), ("sort_words@2.0.0", False)]
