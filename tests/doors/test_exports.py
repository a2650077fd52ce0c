"""export-schema (toolcrib/exports.py, cli/exports.py): each format checked
against the provider's documented shape, written down here as JSON Schema
(and MCP's against the official SDK's own `Tool` type); strict mode; names;
only verified versions. Real registry, real restricted sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import mcp.types
import pytest
from click.testing import CliRunner
from toolcrib.cli import cli

from toolcrib import Registry
from toolcrib.exports import NAME_PATTERN, export_definitions, portable_name, strict_parameters

NAME = {"type": "string", "pattern": NAME_PATTERN.pattern}
OBJECT_SCHEMA = {"type": "object", "required": ["type"], "properties": {"type": {"const": "object"}}}

# OpenAI Chat Completions, request body `tools[]`: a function tool is
# {"type": "function", "function": {name (a-z, A-Z, 0-9, _ and -, at most 64),
# description?, parameters? (a JSON Schema object), strict? (boolean)}}.
OPENAI_CHAT = {
    "type": "object",
    "required": ["type", "function"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": NAME,
                "description": {"type": "string"},
                "parameters": OBJECT_SCHEMA,
                "strict": {"type": "boolean"},
            },
        },
    },
}

# OpenAI Responses API, `tools[]`: the function tool is flat:
# {"type": "function", name, description?, parameters, strict, output_schema?}.
OPENAI_RESPONSES = {
    "type": "object",
    "required": ["type", "name", "parameters", "strict"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "function"},
        "name": NAME,
        "description": {"type": "string"},
        "parameters": OBJECT_SCHEMA,
        "strict": {"type": "boolean"},
        "output_schema": {"type": "object"},
    },
}

# Anthropic Messages API, `tools[]`: a client tool is {name (^[a-zA-Z0-9_-]{1,64}$),
# description?, input_schema (JSON Schema, type "object"), input_examples?
# (objects), strict? (boolean)}.
ANTHROPIC = {
    "type": "object",
    "required": ["name", "input_schema"],
    "additionalProperties": False,
    "properties": {
        "name": NAME,
        "description": {"type": "string"},
        "input_schema": OBJECT_SCHEMA,
        "input_examples": {"type": "array", "items": {"type": "object"}},
        "strict": {"type": "boolean"},
    },
}

SHAPES = {"openai": OPENAI_CHAT, "openai-responses": OPENAI_RESPONSES, "anthropic": ANTHROPIC}

SORT = '''\
def sort_words(words: list[str]) -> list[str]:
    """Sort words alphabetically, ignoring case."""
    return sorted(words, key=lambda w: w.lower())
'''
SORT_TESTS = [{"args": {"words": ["b", "a"]}, "expected": ["a", "b"]}]

# An optional parameter and an open-ended object: strict mode cannot hold them.
COUNT = '''\
def count_words(text: str, lower: bool = True) -> dict[str, int]:
    """Count how often each word occurs."""
    counts = {}
    for word in (text.lower() if lower else text).split():
        counts[word] = counts.get(word, 0) + 1
    return counts
'''
COUNT_TESTS = [{"args": {"text": "a b a"}, "expected": {"a": 2, "b": 1}}]

# Nested arrays and an enum: strict-capable.
PAIRS = '''\
from typing import Literal


def total(rows: list[list[int]], how: Literal["sum", "max"]) -> int:
    """Add up (or take the largest of) every number in a table of rows."""
    values = [n for row in rows for n in row]
    return sum(values) if how == "sum" else max(values)
'''
PAIRS_TESTS = [{"args": {"rows": [[1, 2], [3]], "how": "sum"}, "expected": 6}]


@pytest.fixture(scope="module")
def module_reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Built once for the module (the tests only read it): three verified tools
    and an unverified newer version."""
    path = tmp_path_factory.mktemp("exports") / "r.db"
    with Registry(path, actor="tester") as registry:
        registry.add(SORT, tests=SORT_TESTS)
        registry.add(COUNT, tests=COUNT_TESTS)
        registry.add(PAIRS, tests=PAIRS_TESTS)
        for name in ("sort_words", "count_words", "total"):
            assert registry.verify(name).status == "verified"
        registry.add(SORT.replace("ignoring case", "ignoring letter case"))  # 1.0.1, unverified
        yield registry


@pytest.fixture
def cli_registry(module_reg: Registry) -> Path:
    """The CLI reads `module_reg`'s tools."""
    return module_reg.path


def _parameters(definition: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "openai":
        return definition["function"]["parameters"]
    if fmt == "openai-responses":
        return definition["parameters"]
    if fmt == "anthropic":
        return definition["input_schema"]
    return definition["inputSchema"]


@pytest.mark.parametrize("fmt", ["openai", "openai-responses", "anthropic", "mcp"])
def test_each_format_has_the_documented_shape(tc, module_reg: Registry, fmt: str) -> None:
    result = tc("export-schema", "sort_words@1.0.0", "count_words", "total", "--format", fmt)
    assert result.exit_code == 0, result.output
    definitions = json.loads(result.stdout)
    assert len(definitions) == 3
    for definition, tool in zip(definitions, ["sort_words@1.0.0", "count_words", "total"]):
        if fmt == "mcp":
            parsed = mcp.types.Tool.model_validate(definition)  # the official SDK's type
            assert parsed.input_schema["type"] == "object"
            assert parsed.output_schema is not None and parsed.output_schema["type"] == "object"
            assert parsed.annotations is not None and parsed.annotations.read_only_hint is True
            assert parsed.annotations.open_world_hint is False
            assert NAME_PATTERN.match(parsed.name)
        else:
            jsonschema.validate(definition, SHAPES[fmt])
        params = _parameters(definition, fmt)
        jsonschema.Draft202012Validator.check_schema(params)
        # The tool's own test arguments are valid against what is advertised.
        stored = module_reg.get(tool)
        for case in stored.tests:
            # Under OpenAI strict mode every parameter is sent; null means "the default".
            strict = (definition.get("function") or definition).get("strict") and fmt.startswith("openai")
            sent = {name: case.args.get(name) for name in params["properties"]} if strict else case.args
            jsonschema.validate(sent, params)
        assert (definition.get("function") or definition)["description"].startswith(
            stored.signature.description.split(".")[0]
        )


def test_openai_strict_where_the_schema_allows_it(tc) -> None:
    result = tc("export-schema", "sort_words@1.0.0", "count_words", "total")
    by_name = {d["function"]["name"]: d["function"] for d in json.loads(result.stdout)}
    assert by_name["sort_words"]["strict"] is True
    assert by_name["total"]["strict"] is True
    # An optional parameter no longer turns strict off: it is sent required and nullable.
    assert by_name["count_words"]["strict"] is True
    lower = by_name["count_words"]["parameters"]["properties"]["lower"]
    assert lower["type"] == ["boolean", "null"] and "null: the default, true" in lower["description"]

    def closed(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("additionalProperties") is not False:
                return False
            if node.get("type") == "object" and set(node.get("required", [])) != set(node.get("properties", {})):
                return False
            return all(closed(v) for v in node.values())
        if isinstance(node, list):
            return all(closed(v) for v in node)
        return True

    assert all(closed(by_name[n]["parameters"]) for n in ("sort_words", "total", "count_words"))
    assert "warning" not in result.stderr
    anthropic = tc("export-schema", "count_words", "--format", "anthropic")
    assert anthropic.exit_code == 0 and "warning" not in anthropic.stderr


def test_a_warning_says_why_strict_is_off(tmp_path: Path) -> None:
    from toolcrib.sandbox.fake import FakeBackend

    with Registry(tmp_path / "r.db", backends={"restricted": FakeBackend()}) as registry:
        tool = registry.add("def tally(counts: dict[str, int]) -> int:\n    return sum(counts.values())\n").tool
        out = export_definitions([tool], "openai")
        assert out.definitions[0]["function"]["strict"] is False
        assert out.warnings == ["tally@1.0.0: strict mode off: counts is an object with open-ended keys"]
        anthropic = export_definitions([tool], "anthropic")
        assert anthropic.definitions[0]["strict"] is False
        assert anthropic.warnings == ["tally@1.0.0: strict tool use off: counts is an object with open-ended keys"]


def test_strict_parameters_reasons() -> None:
    ok, reasons = strict_parameters({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
    assert ok == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert reasons == []
    none, reasons = strict_parameters(
        {
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
            "required": ["a"],
            "additionalProperties": False,
        }
    )
    # A constraint strict mode lacks is said in the description (the registry still checks it).
    assert none is not None and reasons == []
    assert none["properties"]["a"]["description"] == "(items must be unique)"
    none, reasons = strict_parameters(
        {
            "type": "object",
            "properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}},
            "required": ["m"],
        }
    )
    assert none is None and any("open-ended" in r for r in reasons)


def test_portable_names() -> None:
    assert portable_name("sort_words") == "sort_words"
    assert portable_name("a.b c@1") == "a_b_c_1"
    long_a, long_b = portable_name("x" * 70), portable_name("x" * 71)
    assert len(long_a) == 64 and long_a != long_b
    assert all(NAME_PATTERN.match(n) for n in (long_a, long_b, portable_name(""), portable_name("é")))


def test_two_versions_of_one_tool_get_distinct_portable_names(module_reg: Registry) -> None:
    old, new = module_reg.get("sort_words@1.0.0"), module_reg.get("sort_words@1.0.1")
    out = export_definitions([old, new], "anthropic")
    names = [d["name"] for d in out.definitions]
    assert names == ["sort_words_v1_0_0", "sort_words_v1_0_1"]
    assert all(NAME_PATTERN.match(n) for n in names)
    assert any("exported as" in w for w in out.warnings)
    with pytest.raises(ValueError, match="unknown format"):
        export_definitions([old], "gemini")


def test_only_verified_live_versions_are_exported(tc, module_reg: Registry) -> None:
    unverified = tc("export-schema", "sort_words")  # NAME resolves to 1.0.1, unverified
    assert unverified.exit_code == 4 and unverified.stdout == ""
    assert "verify" in unverified.stderr
    assert tc("export-schema", "no_such_tool").exit_code == 3
    assert tc("export-schema", "sort_words@1.0.0", "--format", "gemini").exit_code == 2
    assert tc("export-schema").exit_code == 2


def test_yanked_versions_are_refused(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.db") as reg:
        reg.add(SORT, tests=SORT_TESTS)
        reg.verify("sort_words")
        reg.yank("sort_words@1.0.0", "broken")
        result = CliRunner().invoke(cli, ["--registry", str(reg.path), "export-schema", "sort_words@1.0.0"])
        assert result.exit_code == 4 and "yanked" in result.stderr


def test_mcp_export_is_what_serve_lists(module_reg: Registry) -> None:
    """A client given the exported definition and one listing the server see one contract."""
    from toolcrib.mcp_server import ServeOptions, ToolServer

    server = ToolServer(ServeOptions(registry=module_reg.path))
    try:
        listed = {tool.name: tool for tool in server.listings()}
    finally:
        server.close()
    exported = export_definitions(
        [module_reg.get("count_words"), module_reg.get("total"), module_reg.get("sort_words@1.0.0")], "mcp"
    )
    assert set(listed) == {"count_words", "total", "sort_words"}
    for definition in exported.definitions:
        served = listed[definition["name"]].model_dump(mode="json", by_alias=True, exclude_none=True)
        for key in ("name", "title", "description", "inputSchema", "outputSchema"):
            assert definition[key] == served[key], key
        hints = {k: v for k, v in served["annotations"].items() if k.endswith("Hint")}
        assert hints == {k: v for k, v in definition["annotations"].items() if k.endswith("Hint")}
