"""Signatures keep what the maker wrote (issue 17): parameters in declaration
order everywhere (the content hash unchanged), types and descriptions read
from Google, CRAFT-style, numpydoc and reST docstrings for unannotated
parameters (flagged), and test cases checked against the signature at add."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from toolcrib.registry.errors import TestsFormatError
from toolcrib.registry.signature import DOCSTRING_KEY, derive_signature
from toolcrib.registry.versions import content_sha256

from toolcrib import Registry

ORDERED = '''\
def f(zeta: int, alpha: str = "a", *, mid: float = 1.0) -> int:
    """Do f.

    Args:
        zeta: the z
        alpha: the a
        mid: the m
    """
    return zeta
'''

STYLES = {
    "google": '''\
def total(prices, tax=0.0):
    """Add up prices with tax.

    Args:
        prices (list of float): the prices
        tax (float, optional): the tax rate
    """
    return sum(prices) * (1 + tax)
''',
    "craft": '''\
def total(prices, tax=0.0):
    """
    Add up prices with tax.

    Parameters:
    prices (list of float): the prices
    tax (float): the tax rate

    Returns:
    float: the total
    """
    return sum(prices) * (1 + tax)
''',
    "numpydoc": '''\
def total(prices, tax=0.0):
    """Add up prices with tax.

    Parameters
    ----------
    prices : list of float
        the prices
    tax : float, optional
        the tax rate
    """
    return sum(prices) * (1 + tax)
''',
    "rest": '''\
def total(prices, tax=0.0):
    """Add up prices with tax.

    :param prices: the prices
    :type prices: list of float
    :param float tax: the tax rate
    """
    return sum(prices) * (1 + tax)
''',
}


@pytest.mark.parametrize("style", list(STYLES))
def test_docstring_types_and_descriptions_for_unannotated_parameters(style: str) -> None:
    sig = derive_signature(STYLES[style], "total")
    props = sig.input_schema["properties"]
    assert props["prices"]["type"] == "array" and props["prices"]["items"] == {"type": "number"}
    assert props["tax"]["type"] == "number"
    assert props["prices"]["description"] == "the prices" and props["tax"]["description"] == "the tax rate"
    # Flagged: the type is the docstring's word, not an annotation's.
    assert props["prices"][DOCSTRING_KEY] is True and props["tax"][DOCSTRING_KEY] is True
    assert sig.untyped == ["prices", "tax"]
    # The legacy derivation (what older bundles hold) read no types.
    legacy = derive_signature(STYLES[style], "total", legacy_docstrings=True).input_schema["properties"]
    assert "type" not in legacy["prices"] and DOCSTRING_KEY not in legacy["prices"]


def test_an_annotation_wins_and_an_unknown_docstring_type_is_no_evidence() -> None:
    source = '''\
def f(a: int, b, c):
    """F.

    Args:
        a (str): annotated as int
        b (ImagePatch): a class the reader does not know
        c (int or None): either
    """
    return a
'''
    props = derive_signature(source, "f").input_schema["properties"]
    assert props["a"]["type"] == "integer" and DOCSTRING_KEY not in props["a"]
    assert "type" not in props["b"] and DOCSTRING_KEY not in props["b"]
    assert props["c"]["anyOf"] == [{"type": "integer"}, {"type": "null"}] and props["c"][DOCSTRING_KEY] is True


def test_a_docstring_type_is_held_at_call(reg: Registry) -> None:
    reg.add(STYLES["craft"], tests=[{"args": {"prices": [1, 2]}, "expected": 3}])
    reg.verify("total")
    assert reg.call("total", {"prices": [1.5, 2]}).result == 3.5
    from toolcrib.registry.errors import ArgumentsError

    with pytest.raises(ArgumentsError, match="prices"):
        reg.call("total", {"prices": "1,2"})


def test_declaration_order_in_the_schema_and_the_stored_version(reg: Registry) -> None:
    sig = derive_signature(ORDERED, "f")
    assert list(sig.input_schema["properties"]) == ["zeta", "alpha", "mid"]
    # The hash is the one the sorted form always had: order is presentation.
    sorted_sig = sig.model_copy(
        update={
            "input_schema": {**sig.input_schema, "properties": dict(sorted(sig.input_schema["properties"].items()))}
        }
    )
    assert content_sha256(ORDERED, "f", sig, []) == content_sha256(ORDERED, "f", sorted_sig, [])
    added = reg.add(ORDERED)
    assert list(reg.get("f").signature.input_schema["properties"]) == ["zeta", "alpha", "mid"]
    assert reg.get("f").sha256 == added.tool.sha256
    assert reg.add(ORDERED).created is False  # the same content: the same version


def test_a_version_stored_sorted_reads_in_declaration_order(reg: Registry, registry_path: Path) -> None:
    reg.add(ORDERED)
    reg.close()
    # A version stored before the order was kept: its signature text sorted by key.
    conn = sqlite3.connect(registry_path)
    (text,) = conn.execute("SELECT signature FROM versions").fetchone()
    conn.execute("UPDATE versions SET signature = ? WHERE 1", [json.dumps(json.loads(text), sort_keys=True)])
    conn.commit()
    conn.close()
    with Registry(registry_path) as again:
        assert list(again.get("f").signature.input_schema["properties"]) == ["zeta", "alpha", "mid"]


def test_show_lists_parameters_in_declaration_order(tc) -> None:
    result = tc("add", "-", input=ORDERED)
    assert result.exit_code == 0, result.output
    shown = tc("show", "f", "--json")
    props = json.loads(shown.stdout)["signature"]["input_schema"]["properties"]
    assert list(props) == ["zeta", "alpha", "mid"]
    text = tc("show", "f").stdout
    assert text.index("zeta") < text.index("alpha") < text.index("mid")


def test_test_cases_are_checked_against_the_signature_at_add(reg: Registry) -> None:
    with pytest.raises(TestsFormatError) as caught:
        reg.add(
            ORDERED, tests=[{"args": {"zeta": 1}, "expected": 1}, {"name": "bad", "args": {"zeta": "x"}, "expected": 1}]
        )
    message = str(caught.value)
    assert "case 2 (name 'bad')" in message and "zeta" in message and "\n" not in message
    with pytest.raises(TestsFormatError, match=r"case 1: .*omega: unexpected argument"):
        reg.add(ORDERED, tests=[{"args": {"zeta": 1, "omega": 2}, "expected": 1}])
    assert reg.list() == []  # nothing half-written


def test_a_mismatched_case_is_refused_by_the_cli_with_exit_2(tc, tmp_path: Path) -> None:
    tool = tmp_path / "f.py"
    tool.write_text(ORDERED)
    cases = tmp_path / "f.tests.json"
    cases.write_text(json.dumps([{"args": {"zeta": "one"}, "expected": 1}]))
    result = tc("add", str(tool), "--tests", str(cases))
    assert result.exit_code == 2
    assert "case 1" in result.stderr and "zeta" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_export_lists_parameters_in_declaration_order(reg: Registry) -> None:
    from toolcrib.exports import EXPORTERS, export_definitions

    tool = reg.add(ORDERED).tool
    for fmt in EXPORTERS:
        definition = export_definitions([tool], fmt).definitions[0]
        body = definition.get("function") or definition
        schema = body.get("parameters") or body.get("input_schema") or body.get("inputSchema")
        assert list(schema["properties"]) == ["zeta", "alpha", "mid"], fmt


# -- types named through the prelude's imports (CRAFT keeps its imports there) --

CRAFT_PRELUDE_TOOL = '''\
def column_total(table, column, weights: np.ndarray = None):
    """
    Add up one column of a table.

    Parameters:
    table (pd.DataFrame): the table
    column (str): the column's name
    """
    return float(table[column].sum())
'''
CRAFT_PRELUDE = "import pandas as pd\nimport numpy as np\n"


def test_types_named_through_the_prelude_imports_are_read() -> None:
    props = derive_signature(CRAFT_PRELUDE_TOOL, "column_total", prelude=CRAFT_PRELUDE).input_schema["properties"]
    assert props["table"]["x-toolcrib-form"] == "dataframe" and props["table"][DOCSTRING_KEY] is True
    assert props["table"]["description"] == "the table"
    weights = [b for b in props["weights"]["anyOf"] if b.get("x-toolcrib-form")]
    assert [b["x-toolcrib-form"] for b in weights] == ["ndarray"]
    # Without the prelude the same names are unknown: no evidence, any value.
    alone = derive_signature(CRAFT_PRELUDE_TOOL, "column_total").input_schema["properties"]
    assert "x-toolcrib-form" not in alone["table"] and "type" not in alone["table"]
    assert "is not checked" in alone["weights"]["description"]


def test_a_name_the_tool_binds_itself_is_not_the_prelude_import() -> None:
    source = "class pd:\n    DataFrame = list\n\n\n" + CRAFT_PRELUDE_TOOL
    props = derive_signature(source, "column_total", prelude=CRAFT_PRELUDE).input_schema["properties"]
    assert "x-toolcrib-form" not in props["table"]


TYPING_TOOL = 'def first(xs: t.List[int]) -> int:\n    """The first item."""\n    return xs[0]\n'


def test_add_reads_the_prelude_and_checks_cases_with_it(reg: Registry) -> None:
    with pytest.raises(TestsFormatError, match="case 1.*xs"):
        reg.add(TYPING_TOOL, prelude="import typing as t\n", tests=[{"args": {"xs": "1,2"}, "expected": 1}])
    added = reg.add(TYPING_TOOL, prelude="import typing as t\n", tests=[{"args": {"xs": [4, 5]}, "expected": 4}])
    schema = added.tool.signature.input_schema["properties"]["xs"]
    assert schema["type"] == "array" and schema["items"] == {"type": "integer"}


def test_a_bundle_holding_the_derivation_without_the_prelude_still_imports(reg: Registry, tmp_path: Path) -> None:
    from toolcrib.registry.versions import sha256_text
    from toolcrib.sandbox.fake import FakeBackend

    reg.add(TYPING_TOOL, prelude="import typing as t\n", tests=[{"args": {"xs": [4, 5]}, "expected": 4}])
    bundle = json.loads(json.dumps(reg.export()))
    with Registry(tmp_path / "dst.db", actor="importer", backends={"restricted": FakeBackend()}) as target:
        # Today's bundle: derived again through the prelude, it matches.
        assert [r.created for r in target.import_bundle(bundle)] == [True]
    # A bundle an older toolcrib wrote: the signature derived without the
    # prelude (xs not checked), its content hash consistent with it.
    entry = bundle["tools"][0]
    older = derive_signature(TYPING_TOOL, "first")
    assert "type" not in older.input_schema["properties"]["xs"]
    entry["signature"] = older.model_dump(mode="json")
    from toolcrib.registry.bundle import BundleEntry

    parsed = BundleEntry.model_validate(entry)
    entry["sha256"] = content_sha256(
        parsed.source, parsed.entrypoint, parsed.signature, parsed.tests, parsed.policy, parsed.lock, parsed.prelude
    )
    assert sha256_text(entry["source"]) == entry["provenance"]["source_sha256"]
    with Registry(tmp_path / "old.db", actor="importer", backends={"restricted": FakeBackend()}) as target:
        assert [r.created for r in target.import_bundle(bundle)] == [True]
        assert "type" not in target.get("first").signature.input_schema["properties"]["xs"]
    # A schema the source derives neither way is still refused.
    entry["signature"]["input_schema"]["properties"]["xs"] = {"type": "string"}
    parsed = BundleEntry.model_validate(entry)
    entry["sha256"] = content_sha256(
        parsed.source, parsed.entrypoint, parsed.signature, parsed.tests, parsed.policy, parsed.lock, parsed.prelude
    )
    from toolcrib.registry import BundleError

    with Registry(tmp_path / "bad.db", actor="importer", backends={"restricted": FakeBackend()}) as target:
        with pytest.raises(BundleError, match="differs from the one its source derives"):
            target.import_bundle(bundle)


def test_the_any_value_note_names_only_parameters_nothing_types(reg: Registry) -> None:
    # prices and tax are typed by the docstring; table by the docstring
    # through the prelude's pandas; only `note` accepts any value.
    source = '''\
def total(prices, tax, table, note):
    """Add up prices with tax.

    Args:
        prices (list of float): the prices
        tax (float): the tax rate
        table (pd.DataFrame): a table
        note: anything at all
    """
    return sum(prices) * (1 + tax)
'''
    added = reg.add(source, prelude="import pandas as pd\n", allow_missing=True)
    notes = [n for n in added.notes if "accept any JSON value" in n]
    assert notes == ["parameters without a type annotation accept any JSON value: note"], added.notes
