"""`toolcrib add --param NAME=FORM` and a bulk table's 'params' column: the
declared form shows in `add --json` and `show`; a bad declaration is one
line and exit 2, with nothing stored. (No call runs here: the conversion in
the sandbox is tests/registry/test_param_forms.py's.)"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from toolcrib.cli import cli

from toolcrib import Registry

COUNT_ROWS = '''
def count_rows(table, column):
    """How many rows have `column` above zero."""
    return int((table[column] > 0).sum())
'''


def _run(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), *args])


def _tool(tmp_path: Path) -> Path:
    path = tmp_path / "count_rows.py"
    path.write_text(COUNT_ROWS)
    return path


def test_add_declares_a_form_and_show_says_so(tmp_path: Path) -> None:
    done = _run(tmp_path, "add", str(_tool(tmp_path)), "--param", "table=dataframe", "--json")
    assert done.exit_code == 0, done.output
    added = json.loads(done.stdout)
    assert added["param_forms"] == {"table": "dataframe"} and added["ref"] == "count_rows@1.0.0"
    shown = _run(tmp_path, "show", "count_rows")
    assert "count_rows(table: dataframe (declared), column: any)" in shown.stdout, shown.output
    as_json = json.loads(_run(tmp_path, "show", "count_rows", "--json").stdout)
    assert as_json["signature"]["input_schema"]["properties"]["table"]["x-toolcrib-declared"] is True
    # Without --param the same source is another contract: a major version.
    bare = json.loads(_run(tmp_path, "add", str(_tool(tmp_path)), "--json").stdout)
    assert bare["bump"] == "major" and bare["param_forms"] == {} and bare["sha256"] != added["sha256"]


def test_bad_declarations_are_one_line_and_exit_2(tmp_path: Path) -> None:
    tool = str(_tool(tmp_path))
    for given, says in (
        ("rows=dataframe", "a form is declared for 'rows', but count_rows has no such parameter"),
        ("table=frame", "unknown form 'frame' (a parameter may be declared to take: dataframe, ndarray)"),
        ("table", "expected NAME=VALUE"),
    ):
        done = _run(tmp_path, "add", tool, "--param", given)
        assert done.exit_code == 2, done.output
        assert says in done.output and "Traceback" not in done.output
    annotated = tmp_path / "typed.py"
    annotated.write_text("def f(n: int) -> int:\n    return n\n")
    done = _run(tmp_path, "add", str(annotated), "--param", "n=ndarray")
    assert done.exit_code == 2
    assert done.output.strip().splitlines() == [
        "Error: line 1: parameter 'n' is annotated 'int', not an ndarray: a form is declared only for a "
        "parameter without an annotation (or one read as any value)"
    ]
    with Registry(tmp_path / "r.db") as reg:
        assert reg.list() == []


def test_a_table_declares_forms_per_tool(tmp_path: Path) -> None:
    other = "def scale(values, k: float):\n    return (values * k).tolist()\n"
    rows = [
        {"source": COUNT_ROWS, "params": {"table": "dataframe"}},
        {"source": other, "params": "values=ndarray"},
        {"source": COUNT_ROWS, "name": "bad", "params": "table=frame"},
        {"source": COUNT_ROWS, "name": "worse", "params": ["table"]},
    ]
    table = tmp_path / "tools.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = _run(tmp_path, "add", str(table), "--json")
    assert done.exit_code == 2, done.output
    tools = json.loads(done.stdout)["tools"]
    assert [t["admitted"] for t in tools] == [True, True, False, False]
    assert "unknown form 'frame'" in tools[2]["error"] and "column 'params'" in tools[3]["error"]
    with Registry(tmp_path / "r.db") as reg:
        props = reg.get("scale").signature.input_schema["properties"]
        assert props["values"]["x-toolcrib-form"] == "ndarray" and props["values"]["x-toolcrib-declared"] is True
    # --param names one tool's parameters: refused for many, before the registry opens.
    refused = _run(tmp_path / "none", "add", str(table), "--param", "table=dataframe")
    assert refused.exit_code == 2 and "--param" in refused.output
