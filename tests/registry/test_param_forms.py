"""A parameter's form declared at add (`add --param table=dataframe`,
``Registry.add(param_forms=...)``): an unannotated parameter that takes a
DataFrame or an ndarray gets the schema an annotated one has, its JSON is
converted in the sandbox the same way, and the declaration is part of the
stored schema (so of the content hash, `show`, bundles and exports).
Refused, one line and exit 2, when it names no parameter, an unknown form,
or a parameter whose annotation says otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toolcrib.registry.errors import AdmissionError, BundleError, InvalidInput, TestsFormatError
from toolcrib.registry.schema_check import DECLARED_KEY, FORM_KEY, arg_forms, declared_forms
from toolcrib.registry.signature import derive_signature
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry
from toolcrib.exports import export_definitions

# A CRAFT table tool: its import block is a prelude, its parameters unannotated.
COUNT_ROWS = '''
def count_rows(table, column, threshold=0):
    """How many rows of the table have `column` above `threshold`."""
    return int((table[column] > threshold).sum())
'''
ANNOTATED = '''
import pandas as pd


def count_rows(table: pd.DataFrame, column, threshold=0):
    """How many rows of the table have `column` above `threshold`."""
    return int((table[column] > threshold).sum())
'''
RECORDS = [{"city": "a", "sales": 3}, {"city": "b", "sales": -1}, {"city": "c", "sales": 7}]
TABLE = {"table": "dataframe"}


def _without_mark(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k != DECLARED_KEY}


def test_a_declared_form_gives_the_schema_of_an_annotated_parameter() -> None:
    declared = derive_signature(COUNT_ROWS, "count_rows", forms=TABLE).input_schema
    annotated = derive_signature(ANNOTATED, "count_rows").input_schema
    assert _without_mark(declared["properties"]["table"]) == annotated["properties"]["table"]
    assert declared["properties"]["table"][DECLARED_KEY] is True
    assert arg_forms(declared) == {"table": "dataframe"} and declared_forms(declared) == TABLE
    assert declared_forms(annotated) == {}
    # Without the declaration the parameter takes any JSON value, as before.
    plain = derive_signature(COUNT_ROWS, "count_rows").input_schema
    assert arg_forms(plain) == {} and FORM_KEY not in json.dumps(plain)
    # An optional parameter (default None) takes null too; ndarray works alike.
    source = "def f(a, b=None):\n    return 1\n"
    schema = derive_signature(source, "f", forms={"a": "ndarray", "b": "dataframe"}).input_schema
    assert arg_forms(schema) == {"a": "ndarray", "b": "dataframe"}
    assert {"type": "null"} in schema["properties"]["b"]["anyOf"]
    assert schema["required"] == ["a"]


@pytest.fixture
def registry_backends() -> dict[str, Any]:
    return {"restricted": FakeBackend(name="restricted")}


def test_the_declaration_is_stored_hashed_and_idempotent(reg: Registry) -> None:
    first = reg.add(COUNT_ROWS, param_forms=TABLE)
    assert first.created and first.tool.version == "1.0.0"
    stored = reg.get(first.tool.ref).signature.input_schema
    assert declared_forms(stored) == TABLE
    # The same declaration again is the same content: nothing new.
    again = reg.add(COUNT_ROWS, param_forms=dict(TABLE))
    assert (again.created, again.tool.sha256) == (False, first.tool.sha256)
    # Another form is another contract: another hash, a major version.
    other = reg.add(COUNT_ROWS, param_forms={"table": "ndarray"})
    assert other.created and other.bump == "major" and other.tool.sha256 != first.tool.sha256
    # Only the unannotated parameters are noted as taking any JSON value.
    assert any(n.endswith("accept any JSON value: column, threshold") for n in first.notes), first.notes


def test_an_annotation_that_already_says_it_makes_the_declaration_a_no_op(reg: Registry) -> None:
    plain = reg.add(ANNOTATED, requires=None, allow_missing=True, policy="plain")
    declared = reg.add(ANNOTATED, param_forms=TABLE, allow_missing=True, policy="plain")
    assert (declared.created, declared.tool.sha256) == (False, plain.tool.sha256)


@pytest.mark.parametrize(
    ("forms", "message"),
    [
        ({"tabel": "dataframe"}, "a form is declared for 'tabel', but count_rows has no such parameter"),
        ({"table": "DataFrame"}, "parameter 'table': unknown form 'DataFrame' (a parameter may be declared to take"),
        ({"table": "series"}, "unknown form 'series'"),
    ],
)
def test_a_declaration_naming_nothing_known_is_refused(reg: Registry, forms: dict[str, str], message: str) -> None:
    with pytest.raises(AdmissionError) as caught:
        reg.add(COUNT_ROWS, param_forms=forms)
    assert message in caught.value.message and "\n" not in caught.value.message
    assert caught.value.exit_code == 2
    assert reg.list() == []


def test_a_declaration_that_contradicts_an_annotation_is_refused(reg: Registry) -> None:
    source = "def f(n: int, table):\n    return n\n"
    with pytest.raises(AdmissionError) as caught:
        reg.add(source, param_forms={"n": "dataframe"})
    assert "parameter 'n' is annotated 'int', not a DataFrame" in str(caught.value)
    with pytest.raises(AdmissionError, match="annotated 'pd.DataFrame', not an ndarray"):
        reg.add(ANNOTATED, param_forms={"table": "ndarray"}, allow_missing=True, policy="plain")
    with pytest.raises(InvalidInput, match="parameter forms are"):
        reg.add(source, param_forms={"table": 1})  # type: ignore[dict-item]
    assert reg.list() == []


def test_test_cases_are_checked_against_the_declared_form(reg: Registry) -> None:
    # A dict of columns is not a frame's JSON form: refused at add, naming the case.
    with pytest.raises(TestsFormatError, match="case 1.*table: .*a DataFrame is an array of records"):
        reg.add(
            COUNT_ROWS,
            param_forms=TABLE,
            tests=[{"args": {"table": {"sales": [1, 2]}, "column": "sales"}, "expected": 1}],
        )
    done = reg.add(
        COUNT_ROWS, param_forms=TABLE, tests=[{"args": {"table": RECORDS, "column": "sales"}, "expected": 2}]
    )
    assert done.created


def test_a_bundle_carries_the_declaration_and_a_doctored_one_is_refused(reg: Registry, tmp_path: Path) -> None:
    tool = reg.add(COUNT_ROWS, param_forms=TABLE).tool
    bundle = json.loads(json.dumps(reg.export()))
    with Registry(tmp_path / "other.db", actor="t", backends={"restricted": FakeBackend(name="restricted")}) as other:
        imported = other.import_bundle(bundle)
        assert [r.tool.sha256 for r in imported] == [tool.sha256]
        assert declared_forms(other.get("count_rows").signature.input_schema) == TABLE
    # A form declared on an annotated parameter (the hash recomputed by the
    # forger) is not what the source derives with it: refused.
    doctored = json.loads(json.dumps(bundle))
    entry = doctored["tools"][0]
    entry["source"] = "def count_rows(table: int, column, threshold=0):\n    return 1\n"
    with (
        Registry(tmp_path / "third.db", actor="t") as third,
        pytest.raises(BundleError, match="declared parameter forms"),
    ):
        third.import_bundle(doctored)


def test_exports_show_the_json_form_without_toolcrib_marks(reg: Registry) -> None:
    tool = reg.add(COUNT_ROWS, param_forms=TABLE).tool
    annotated = derive_signature(ANNOTATED, "count_rows").input_schema["properties"]["table"]
    (definition,) = export_definitions([tool], "anthropic").definitions
    table = definition["input_schema"]["properties"]["table"]
    assert "x-toolcrib" not in json.dumps(definition)
    assert [b["type"] for b in table["anyOf"]] == [b["type"] for b in annotated["anyOf"]] == ["array", "object"]


def test_a_real_sandboxed_call_receives_the_declared_form(registry_path: Path) -> None:
    """The real restricted backend: the form reaches the sandbox (the job's
    arg_forms), which converts the JSON before the call. Without pandas in
    the version's lock that is the documented ArgumentFormError; before the
    declaration existed the tool got the records list and answered."""
    source = "def rows(table):\n    return len(table)\n"
    with Registry(registry_path, actor="t") as reg:
        undeclared = reg.add(source, name="rows_any").tool
        declared = reg.add(source, param_forms=TABLE).tool
        plain = reg.call(undeclared.ref, {"table": RECORDS}, allow_unverified=True)
        assert (plain.status, plain.result) == ("ok", 3)
        converted = reg.call(declared.ref, {"table": RECORDS}, allow_unverified=True)
    assert converted.status == "error" and converted.error is not None
    assert converted.error.type == "ArgumentFormError"
    assert "argument 'table' is a dataframe, but pandas is not available" in converted.error.message


@pytest.mark.network
def test_an_unannotated_table_tool_gets_a_real_dataframe(registry_path: Path) -> None:
    """The CRAFT case end to end: the import block as a prelude, the table
    parameter unannotated, pandas locked; records and the columns form both
    arrive as a DataFrame, verified and called in the real sandbox."""
    tests = [{"args": {"table": RECORDS, "column": "sales"}, "expected": 2}]
    with Registry(registry_path, actor="t") as reg:
        tool = reg.add(
            COUNT_ROWS, prelude="import pandas as pd\n", requires=["pandas"], param_forms=TABLE, tests=tests
        ).tool
        verdict = reg.verify(tool.ref)
        assert (verdict.status, verdict.passed) == ("verified", 1), verdict.cases
        columns = {"columns": ["city", "sales"], "data": [["x", 5], ["y", 6], ["z", 0]]}
        outcome = reg.call(tool.ref, {"table": columns, "column": "sales", "threshold": 4})
        assert (outcome.status, outcome.result) == ("ok", 2), outcome.error
        # The same tool without the declaration fails as plain Python does with a list.
        bare = reg.add(COUNT_ROWS, name="bare", prelude="import pandas as pd\n", requires=["pandas"]).tool
        failed = reg.call(bare.ref, {"table": RECORDS, "column": "sales"}, allow_unverified=True)
    assert failed.status == "error" and failed.error is not None and failed.error.type == "TypeError"
