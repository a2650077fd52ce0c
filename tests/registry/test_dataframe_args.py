"""Arguments that are not JSON: a `pandas.DataFrame` parameter takes records
or ``{"columns", "data"}``, a `numpy.ndarray` one nested lists of numbers;
the sandbox converts them before the call and converts frames, series,
arrays and numpy scalars back (docs/formats.md). Schemas are read from the
source only; calls run with real pandas and numpy wheels."""

from __future__ import annotations

from typing import Any

import pytest
from toolcrib.registry.errors import ArgumentsError
from toolcrib.registry.signature import FORM_KEY, arg_forms, derive_signature, validate_stored_arguments
from toolcrib.sandbox.contract import Job
from toolcrib.sandbox.restricted import RestrictedBackend

from toolcrib import Registry

SUMMARY = '''
import numpy as np
import pandas as pd


def summarize(sales: pd.DataFrame, weights: np.ndarray | None = None) -> pd.DataFrame:
    """Total amount per region, largest first (optionally weighted)."""
    if weights is not None:
        sales = sales.assign(amount=sales["amount"] * weights)
    totals = sales.groupby("region", as_index=False)["amount"].sum()
    return totals.sort_values("amount", ascending=False)
'''
RECORDS = [
    {"region": "north", "amount": 10},
    {"region": "south", "amount": 5},
    {"region": "north", "amount": 7.5},
]


def _schema(source: str = SUMMARY, entrypoint: str = "summarize") -> dict[str, Any]:
    return derive_signature(source, entrypoint).input_schema


def test_frame_and_array_parameters_get_their_json_forms() -> None:
    schema = _schema()
    assert schema["required"] == ["sales"]
    sales = schema["properties"]["sales"]
    assert sales[FORM_KEY] == "dataframe"
    assert [branch["type"] for branch in sales["anyOf"]] == ["array", "object"]
    weights = schema["properties"]["weights"]
    assert any(b.get(FORM_KEY) == "ndarray" for b in weights["anyOf"])
    assert arg_forms(schema) == {"sales": "dataframe", "weights": "ndarray"}
    # A returned frame comes back as records.
    out = derive_signature(SUMMARY, "summarize").output_schema
    assert out is not None and out["type"] == "array" and out["items"]["type"] == "object"
    # The spellings a tool maker uses.
    for header, annotation in (
        ("from pandas import DataFrame", "DataFrame"),
        ("import pandas", "pandas.DataFrame"),
        ("import numpy.typing as npt", "npt.NDArray"),
        ("import numpy.typing as npt\nimport numpy as np", "npt.NDArray[np.float64]"),
    ):
        source = f"{header}\n\ndef f(x: {annotation}) -> int:\n    return 1\n"
        assert arg_forms(_schema(source, "f")) == {"x": "dataframe" if "DataFrame" in annotation else "ndarray"}


@pytest.mark.parametrize(
    "value",
    [
        RECORDS,
        [],
        {"columns": ["region", "amount"], "data": [["north", 1], ["south", None]]},
        {"columns": [0, 1], "data": []},
    ],
)
def test_both_frame_forms_are_accepted(value: Any) -> None:
    assert validate_stored_arguments(_schema(), {"sales": value}, function="summarize") == {"sales": value}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"sales": [1, 2]}, "sales"),
        ({"sales": [{"region": {"nested": 1}}]}, "sales"),
        ({"sales": {"columns": ["a"]}}, "sales"),
        ({"sales": {"columns": ["a"], "data": [[1]], "index": [0]}}, "sales"),
        ({"sales": RECORDS, "weights": ["heavy"]}, "weights"),
        ({"sales": RECORDS, "weights": [[[[[1]]]]]}, "weights"),
    ],
)
def test_bad_frames_and_arrays_are_refused_before_any_sandbox(args: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_stored_arguments(_schema(), args, function="summarize")
    assert list(caught.value.fields) == [field]


@pytest.mark.network
def test_a_dataframe_tool_is_called_with_json_records(reg: Registry) -> None:
    tests = [
        {
            "args": {"sales": RECORDS},
            "expected": [{"region": "north", "amount": 17.5}, {"region": "south", "amount": 5.0}],
        }
    ]
    tool = reg.add(SUMMARY, tests=tests, requires=["pandas"]).tool
    verdict = reg.verify(tool.ref)
    assert (verdict.status, verdict.passed) == ("verified", 1), verdict.cases
    # Records, the columns form, and an ndarray argument.
    assert reg.call(tool.ref, {"sales": RECORDS}).result == [
        {"region": "north", "amount": 17.5},
        {"region": "south", "amount": 5.0},
    ]
    columns = {"columns": ["region", "amount"], "data": [["east", 2], ["west", 3], ["east", 4]]}
    assert reg.call(tool.ref, {"sales": columns}).result == [
        {"region": "east", "amount": 6},
        {"region": "west", "amount": 3},
    ]
    weighted = reg.call(tool.ref, {"sales": RECORDS, "weights": [1, 10, 2]})
    assert weighted.result == [{"region": "south", "amount": 50}, {"region": "north", "amount": 25.0}]
    bad = reg.call(tool.ref, {"sales": RECORDS, "weights": [1, 2]})
    assert bad.status == "error" and bad.error is not None and bad.error.type == "ValueError"


@pytest.mark.network
def test_library_values_come_back_as_json(reg: Registry) -> None:
    source = """
import numpy as np
import pandas as pd


def shapes(n: int) -> dict:
    frame = pd.DataFrame({"k": ["a", "b", "a"][:n], "v": [1.5, None, 2.0][:n]})
    frame["when"] = pd.to_datetime(["2024-01-02", None, "2024-03-04"][:n])
    return {
        "frame": frame,
        "series": frame["v"],
        "by_key": frame.groupby("k")["v"].sum(),
        "array": np.arange(4).reshape(2, 2),
        "scalar": np.float32(0.5),
        "count": np.int64(n),
        "flag": np.bool_(True),
    }
"""
    tool = reg.add(source, requires=["pandas"]).tool
    outcome = reg.call(tool.ref, {"n": 3}, allow_unverified=True)
    assert outcome.status == "ok", outcome.error
    assert outcome.result == {
        "frame": [
            {"k": "a", "v": 1.5, "when": "2024-01-02T00:00:00"},
            {"k": "b", "v": None, "when": None},
            {"k": "a", "v": 2.0, "when": "2024-03-04T00:00:00"},
        ],
        "series": [1.5, None, 2.0],
        "by_key": {"a": 3.5, "b": 0.0},
        "array": [[0, 1], [2, 3]],
        "scalar": 0.5,
        "count": 3,
        "flag": True,
    }


@pytest.mark.network
def test_labels_that_become_the_same_key_are_an_error_not_a_lost_column(reg: Registry) -> None:
    source = """
import pandas as pd


def clash() -> pd.DataFrame:
    return pd.DataFrame([[1, 2]], columns=[1, "1"])
"""
    tool = reg.add(source, requires=["pandas"]).tool
    outcome = reg.call(tool.ref, {}, allow_unverified=True)
    assert (outcome.status, outcome.error and outcome.error.type) == ("error", "ResultNotJSON"), outcome
    assert outcome.error is not None and "both become the key" in outcome.error.message


def test_a_frame_argument_without_pandas_in_the_sandbox_is_a_clear_error() -> None:
    backend = RestrictedBackend()
    try:
        job = Job(
            source="def f(df):\n    return len(df)\n",
            entrypoint="f",
            args={"df": RECORDS},
            policy="plain",
            arg_forms={"df": "dataframe"},
        )
        result = backend.run(job)
    finally:
        backend.close()
    assert result.status == "error" and result.error is not None
    assert result.error.type == "ArgumentFormError"
    assert "pandas is not available in the sandbox" in result.error.message


@pytest.mark.network
def test_a_frame_pandas_cannot_build_is_an_argument_error_not_the_tools(reg: Registry) -> None:
    # The schema admits rows shorter than the columns; pandas refuses them
    # (seen fuzzing the CRAFT table tools, where it passed for the tool's bug).
    source = "import pandas as pd\n\n\ndef rows(df: pd.DataFrame) -> int:\n    return len(df)\n"
    tool = reg.add(source, requires=["pandas"]).tool
    outcome = reg.call(tool.ref, {"df": {"columns": [0], "data": [[]]}}, allow_unverified=True)
    assert outcome.status == "error" and outcome.error is not None
    assert (outcome.error.type, outcome.error.line) == ("ArgumentFormError", None)
    assert outcome.error.message.startswith("argument 'df' cannot be made a dataframe: ")
    assert "columns passed" in outcome.error.message
