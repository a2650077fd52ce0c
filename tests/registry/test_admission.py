"""Admission of tool source: Markdown extraction, top-level rules, entrypoint choice."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolcrib.registry.admission import MAX_SOURCE_BYTES, Admitted, admit, check_name, extract_python
from toolcrib.registry.errors import AdmissionError, InvalidInput


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# A reply in the style of a tool maker's final "wrap" message: the tool, then
# use cases whose solution blocks call it.
LATM_REPLY = src(
    """
    Here is a function to solve a class of problems:

    ```python
    from collections import Counter

    def most_common_letter(text):
        counts = Counter(c for c in text.lower() if c.isalpha())
        return counts.most_common(1)[0][0]
    ```

    Use cases:

    Question: Which letter occurs most often in "Banana bread"?
    Answer: a

    Solution:
    ```python
    text = "Banana bread"
    ret = most_common_letter(text)
    ans = ret
    ```

    Question: Which letter occurs most often in "Mississippi"?

    Solution:
    ```python
    ret = most_common_letter("Mississippi")
    ans = ret
    ```
    """
)


# -- plain sources -------------------------------------------------------------


def test_plain_source_is_kept_byte_identical_with_a_final_newline():
    text = "import math\n\n# why: radians\ndef area(r: float) -> float:\n    return math.pi * r * r  # pi r^2"
    admitted = admit(text)
    assert isinstance(admitted, Admitted)
    assert admitted.source == text + "\n"
    assert admitted.entrypoint == "area"
    assert admitted.public_functions == ["area"]
    assert admitted.notes == []


def test_line_endings_and_bom_are_normalized_with_notes():
    admitted = admit("\ufeffdef f(x: int) -> int:\r\n    return x\r\n\r\n\r\n")
    assert admitted.source == "def f(x: int) -> int:\n    return x\n"
    assert any("byte-order mark" in n for n in admitted.notes)
    assert any("line endings" in n for n in admitted.notes)


def test_size_cap_is_enforced():
    body = "def f():\n    return 1\n" + "#" * 100 + "\n"
    with pytest.raises(AdmissionError, match="limit is 50"):
        admit(body, max_bytes=50)
    assert admit(body, max_bytes=len(body.encode())).entrypoint == "f"
    assert MAX_SOURCE_BYTES == 256 * 1024


def test_bytes_must_be_utf8_and_the_bad_line_is_named():
    with pytest.raises(AdmissionError) as info:
        admit(b"def f():\n    return '\xff'\n")
    assert info.value.line == 2
    assert "UTF-8" in str(info.value)
    assert admit("def f():\n    return 'é'\n".encode()).source.endswith("'é'\n")


def test_lone_surrogates_are_refused():
    with pytest.raises(AdmissionError, match="UTF-8"):
        admit("def f():\n    return '\ud800'\n")


def test_syntax_errors_name_the_line():
    with pytest.raises(AdmissionError) as info:
        admit("def f(x):\n    return x\n\ndef g(:\n    pass\n")
    assert info.value.line == 4
    assert str(info.value).startswith("line 4: syntax error")


def test_deeply_nested_source_is_refused_cleanly():
    text = "X = " + "(" * 300 + "1" + ")" * 300 + "\ndef f():\n    return X\n"
    with pytest.raises(AdmissionError):
        admit(text)


def test_empty_or_definition_free_source_is_refused():
    with pytest.raises(AdmissionError, match="no top-level function"):
        admit("X = 1\n")
    with pytest.raises(AdmissionError, match="no top-level function"):
        admit("")


# -- top-level rules -------------------------------------------------------------


ALLOWED_TOP_LEVEL = src(
    '''
    """Module docstring."""
    from __future__ import annotations

    import re
    import string
    from typing import TYPE_CHECKING, Dict, TypeVar

    if TYPE_CHECKING:
        from collections.abc import Sequence

    try:
        import numpy as np
    except ImportError:
        np = None

    T = TypeVar("T")
    PI = 3.14159
    NEG = -1
    WORDS = ["a", "b", *["c"]]
    TABLE: Dict[str, int] = {"a": 1, "b": PI > 3}
    LETTERS = set(string.ascii_lowercase)
    PATTERN = re.compile(r"\\d+")
    SQUARES = {n: n * n for n in range(10)}
    KEY = lambda item: item[1]
    ORDERED = sorted(WORDS, key=KEY, reverse=True)
    HANDLERS = {"help": _private}
    _MISSING = object()
    SIZE: int
    Alias = Dict[str, "list[int]"]
    ...

    class Helper:
        pass

    def _private(x):
        return x

    async def fetch():
        return 1

    def tool(x: int) -> int:
        return _private(x) + len(WORDS)
    '''
)


def test_admissible_top_level_statements_pass_unchanged():
    admitted = admit(ALLOWED_TOP_LEVEL)
    assert admitted.source == ALLOWED_TOP_LEVEL
    assert admitted.entrypoint == "tool"


@pytest.mark.parametrize(
    ("stray", "kind"),
    [
        ("print(tool(2))", "a call"),
        ("result = tool(2)", "assignment that runs code"),
        ("for i in range(3):\n    tool(i)", "a loop"),
        ("while False:\n    pass", "a loop"),
        ("X = _helper()", "assignment that runs code"),
        ("TABLE['k'] = 1", "assignment"),
        ("COUNT = 0\nCOUNT += 1", "assignment that runs code"),
        ("assert tool(1) == 2", "Assert"),
        ("with open('f') as fh:\n    pass", "With"),
        ("X = sorted([2, 1])\ndef sorted(x):\n    return x", "assignment that runs code"),
        ("if True:\n    tool(1)", "If"),
        ("X = (lambda: 1)()", "assignment that runs code"),
        ("import os\nX = os.system('true')", "assignment that runs code"),
        ("X = sorted([2, 1], key=_helper)", "assignment that runs code"),
        ("X = sorted([2, 1], key=lambda v: print(v))", "assignment that runs code"),
        ("set = print\nX = set('ab')", "assignment that runs code"),
    ],
)
def test_stray_top_level_statements_are_refused_with_their_line(stray: str, kind: str):
    head = "def _helper():\n    return 1\n\ndef tool(x: int) -> int:\n    return x\n\n"
    text = head + stray + "\n"
    with pytest.raises(AdmissionError) as info:
        admit(text)
    first_stray_line = head.count("\n") + 1
    assert info.value.line is not None and info.value.line >= first_stray_line
    assert kind in str(info.value)
    assert "--strip-top-level" in str(info.value)


def test_strip_top_level_removes_example_usage_and_keeps_the_rest_byte_identical():
    text = src(
        '''
        import math

        SCALE = 1.0  # kept: the tool uses it
        UNIT = "cm"


        def area(r: float) -> float:
            """Area of a circle."""
            # comments inside stay
            return math.pi * (SCALE * r) ** 2


        # Example usage:
        radius = 2.0
        value = area(radius * SCALE)
        print(f"{value} {UNIT}")
        '''
    )
    admitted = admit(text, strip_top_level=True)
    expected = text.split("\n\n\n# Example usage:")[0].replace('UNIT = "cm"\n', "") + "\n"
    assert admitted.source == expected
    joined = "\n".join(admitted.notes)
    assert "example constant ('UNIT') tied to stripped code at line 4" in joined
    assert "example constant ('radius')" in joined and "lines 13-14" in joined
    assert "assignment that runs code at line 15" in joined
    assert "a call at line 16" in joined
    assert "SCALE = 1.0  # kept: the tool uses it\n" in admitted.source


def test_strip_keeps_constants_that_kept_code_uses():
    text = "LIMIT = 10\n\ndef f(n: int) -> bool:\n    return n < LIMIT\n\nprint(f(LIMIT))\n"
    admitted = admit(text, strip_top_level=True)
    assert admitted.source == "LIMIT = 10\n\ndef f(n: int) -> bool:\n    return n < LIMIT\n"


def test_strip_removes_constants_built_from_stripped_results():
    text = "def f(x):\n    return x\n\nret = f(1)\nans = ret\nalias = ans\n"
    admitted = admit(text, strip_top_level=True)
    assert admitted.source == "def f(x):\n    return x\n"
    assert sum("tied to stripped code" in n for n in admitted.notes) == 2


def test_strip_refuses_a_stray_statement_sharing_a_line_with_kept_code():
    with pytest.raises(AdmissionError, match="shares line 3") as info:
        admit("def f():\n    return 1\nX = 1; print(f())\n", strip_top_level=True)
    assert info.value.line == 3


def test_main_guard_is_always_stripped_and_never_needed():
    text = "def f(x: int) -> int:\n    return x\n\nif __name__ == '__main__':\n    print(f(3))\n"
    admitted = admit(text)
    assert admitted.source == "def f(x: int) -> int:\n    return x\n"
    assert any("__main__" in n and "lines 4-5" in n for n in admitted.notes)


def test_admission_never_executes_the_tool(tmp_path: Path):
    marker = tmp_path / "ran"
    text = src(
        f"""
        def _touch(fn):
            open({str(marker)!r}, "w").close()
            return fn

        @_touch
        def tool(x=open({str(marker)!r}, "w")) -> "open({str(marker)!r}, 'w')":
            return x

        class Boom:
            open({str(marker)!r}, "w").close()
        """
    )
    admitted = admit(text, entrypoint="tool")
    assert admitted.entrypoint == "tool"
    assert not marker.exists()


# -- entrypoint ----------------------------------------------------------------


def test_explicit_entrypoint_may_be_any_plain_top_level_def():
    text = "def a():\n    return 1\n\ndef b():\n    return a()\n\ndef _c():\n    return 3\n"
    assert admit(text, entrypoint="a").entrypoint == "a"
    assert admit(text, entrypoint="_c").entrypoint == "_c"


def test_missing_entrypoint_lists_public_functions():
    text = "def alpha():\n    return 1\n\ndef beta():\n    return 2\n"
    with pytest.raises(AdmissionError, match=r"no top-level function named 'gamma' \(public functions: alpha, beta\)"):
        admit(text, entrypoint="gamma")


def test_class_and_async_entrypoints_are_refused():
    text = "class K:\n    pass\n\nasync def run():\n    return 1\n\ndef ok():\n    return 1\n"
    with pytest.raises(AdmissionError, match="is a class") as info:
        admit(text, entrypoint="K")
    assert info.value.line == 1
    with pytest.raises(AdmissionError, match="async") as info:
        admit(text, entrypoint="run")
    assert info.value.line == 4


def test_the_only_public_function_is_the_entrypoint():
    text = "def _helper(x):\n    return x\n\ndef main(x):\n    return _helper(x)\n"
    admitted = admit(text)
    assert admitted.entrypoint == "main"
    assert admitted.public_functions == ["main"]


def test_the_single_uncalled_public_function_is_chosen_with_a_note():
    text = src(
        """
        def parse(text):
            return text.split()

        def count(words):
            return len(words)

        def count_words(text):
            return count(parse(text))
        """
    )
    admitted = admit(text)
    assert admitted.entrypoint == "count_words"
    assert admitted.public_functions == ["parse", "count", "count_words"]
    assert any("'count_words' chosen" in n for n in admitted.notes)


def test_a_parameter_named_like_a_function_is_not_a_use_of_it():
    text = "def words(x):\n    return x\n\ndef count(words):\n    return len(words)\n"
    # Neither function uses the other (count's `words` is its parameter): ambiguous.
    with pytest.raises(AdmissionError, match=r"several public functions could be the entrypoint \(words, count\)"):
        admit(text)


def test_ambiguous_roots_are_refused_listing_candidates():
    text = "def helper():\n    return 1\n\ndef a():\n    return helper()\n\ndef b():\n    return helper()\n"
    with pytest.raises(AdmissionError, match=r"\(a, b\); pass --entrypoint"):
        admit(text)


def test_no_public_function_points_at_private_ones():
    with pytest.raises(AdmissionError, match="private functions: _only"):
        admit("def _only():\n    return 1\n")


def test_redefinition_uses_the_last_definition():
    text = "def f(x):\n    return 1\n\ndef f(x: int):\n    return 2\n"
    admitted = admit(text)
    assert admitted.entrypoint == "f"
    assert admitted.public_functions == ["f"]
    text = "def f():\n    return 1\n\nf = 3\n"
    with pytest.raises(AdmissionError, match="not a def"):
        admit(text, entrypoint="f")


def test_star_args_and_positional_only_entrypoints_are_refused_at_their_line():
    with pytest.raises(AdmissionError, match=r"\*numbers") as info:
        admit("# total\n\ndef total(\n    *numbers,\n):\n    return sum(numbers)\n")
    assert info.value.line == 4
    with pytest.raises(AdmissionError, match="positional-only"):
        admit("def f(a, /, b):\n    return a\n")


def test_untyped_parameters_are_reported_in_notes():
    admitted = admit("def f(a, b: int, c=3):\n    return a\n")
    assert any(n.endswith("accept any JSON value: a, c") for n in admitted.notes)


# -- Markdown --------------------------------------------------------------------


def test_latm_reply_uses_the_definition_block_and_skips_use_cases():
    admitted = admit(LATM_REPLY)
    assert admitted.entrypoint == "most_common_letter"
    assert admitted.source == src(
        """
        from collections import Counter

        def most_common_letter(text):
            counts = Counter(c for c in text.lower() if c.isalpha())
            return counts.most_common(1)[0][0]
        """
    )
    assert admitted.notes[0] == "used code block 1 (from line 4) of the Markdown reply"
    skipped = [n for n in admitted.notes if n.startswith("skipped")]
    assert len(skipped) == 2 and all("usage example" in n for n in skipped)


def test_autodetection_and_explicit_markdown_flag():
    code, notes = extract_python(LATM_REPLY)
    assert code.startswith("from collections import Counter")
    assert notes
    plain = "def f():\n    '''Example:\n\n```python\nf()\n```\n'''\n    return 1\n"
    assert extract_python(plain) == (plain, [])
    assert admit(plain).source == plain
    with pytest.raises(AdmissionError, match="no Python code block"):
        admit(plain, markdown=True)
    with pytest.raises(AdmissionError, match="syntax error"):
        admit(LATM_REPLY, markdown=False)


def test_several_definition_blocks_are_joined_in_order():
    reply = src(
        """
        First a helper:

        ```py
        def _clean(s):
            return s.strip().lower()
        ```

        Then the tool:

        ```
        def normalize_all(items: list[str]) -> list[str]:
            return [_clean(s) for s in items]
        ```

        Output:

        ```
        ['a', 'b']
        ```

        ```bash
        python tool.py
        ```
        """
    )
    admitted = admit(reply)
    assert admitted.entrypoint == "normalize_all"
    assert admitted.source == (
        "def _clean(s):\n    return s.strip().lower()\n\n\n"
        "def normalize_all(items: list[str]) -> list[str]:\n    return [_clean(s) for s in items]\n"
    )
    assert admitted.notes[0] == "used code blocks 1 (from line 4), 2 (from line 11) of the Markdown reply"
    assert any("code block 3" in n and "usage example" in n for n in admitted.notes)
    assert any("code block 4" in n and "'bash'" in n for n in admitted.notes)


def test_a_later_block_that_redefines_everything_replaces_the_earlier_one():
    reply = src(
        """
        ```python
        def f(x):
            return x
        ```

        Improved version:

        ```python
        def f(x: int) -> int:
            return x + 0
        ```
        """
    )
    admitted = admit(reply)
    assert admitted.source == "def f(x: int) -> int:\n    return x + 0\n"
    assert any("code block 1" in n and "replaced by a later block" in n for n in admitted.notes)


def test_markdown_errors_point_at_lines_of_the_reply():
    reply = "Intro\n\n```python\ndef f(x):\n    return x\n\nprint(f(1))\n```\n"
    with pytest.raises(AdmissionError) as info:
        admit(reply)
    assert info.value.line == 7
    broken = "Intro\n\n```python\ndef f(x:\n    return x\n```\n"
    with pytest.raises(AdmissionError) as info:
        admit(broken)
    assert info.value.line == 4
    stripped = admit(reply, strip_top_level=True)
    assert "stripped a call at line 7" in stripped.notes
    assert stripped.source == "def f(x):\n    return x\n"


def test_second_block_line_mapping_and_star_args_line():
    reply = "a\n```python\nX = 1\n```\nb\n```python\ndef f(\n    *rest,\n):\n    return rest\n```\n"
    with pytest.raises(AdmissionError) as info:
        admit(reply)
    assert info.value.line == 8


def test_tilde_fences_indented_fences_and_unclosed_fences():
    reply = (
        "1. The tool:\n\n   ~~~python\n   def f(x):\n       return x\n   ~~~\n\n```python\ndef g(y):\n    return f(y)\n"
    )
    admitted = admit(reply)
    assert admitted.source == "def f(x):\n    return x\n\n\ndef g(y):\n    return f(y)\n"
    assert admitted.entrypoint == "g"


def test_reply_without_any_definition_is_refused():
    with pytest.raises(AdmissionError, match="no Python code block defining a function"):
        admit("Try this:\n\n```python\nprint(1)\n```\n")


def test_interactive_sessions_are_skipped():
    reply = "```python\ndef f():\n    return 1\n```\n\n```python\n>>> f()\n1\n```\n"
    admitted = admit(reply)
    assert admitted.source == "def f():\n    return 1\n"
    assert any("code block 2 (lines 6-9)" in n and "interactive session" in n for n in admitted.notes)


def test_tagged_python_block_that_does_not_parse_is_an_error_but_bare_ones_are_skipped():
    with pytest.raises(AdmissionError, match="code block 1 .* does not parse") as info:
        admit("Text\n```python\ndef f(:\n```\n")
    assert info.value.line == 3
    reply = "```\nnot python at all ::\n```\n\n```python\ndef f():\n    return 1\n```\n"
    admitted = admit(reply)
    assert admitted.entrypoint == "f"
    assert any("untagged and not valid Python" in n for n in admitted.notes)


# -- names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["word_sort", "a", "A-1_b", "x" * 64])
def test_valid_names(name: str):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "dot.name", "slash/name", "name@1.0", "ünï"])
def test_invalid_names(name: str):
    with pytest.raises(InvalidInput, match="invalid tool name"):
        check_name(name)


# -- properties --------------------------------------------------------------------

_idents = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"if", "in", "is", "as", "or", "and", "not", "def", "for", "del", "try", "with", "else"}
)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(_idents, min_size=1, max_size=4, unique=True),
    strays=st.lists(
        st.sampled_from(["print({f}(1))", "tmp_{f} = {f}(2)", "for _ in range(2):\n    {f}(3)"]), max_size=4
    ),
)
def test_stripping_is_idempotent_and_leaves_only_the_definitions(names: list[str], strays: list[str]):
    definitions = "\n\n".join(f"def {n}(v):\n    return v" for n in names) + "\n"
    text = definitions + "".join("\n" + s.format(f=names[0]) + "\n" for s in strays)
    entry = names[-1]
    once = admit(text, strip_top_level=True, entrypoint=entry)
    assert once.source == definitions
    twice = admit(once.source, entrypoint=entry)
    assert twice.source == once.source
    assert len([n for n in once.notes if n.startswith("stripped")]) == len(strays)


_fragments = st.sampled_from(
    [
        "def f(x):\n    return x\n",
        "```python\n",
        "```\n",
        "print(1)\n",
        "X = [1, 2]\n",
        "import re\n",
        "class K:\n    pass\n",
        "async def g():\n    pass\n",
        "if __name__ == '__main__':\n    f(1)\n",
        "def h(*a):\n    pass\n",
        "~~~\n",
        "text\n",
        "  ",
        "\r\n",
        "def f(a, /):\n    return a\n",
        "x = f(\n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(_fragments, st.text(max_size=12)), max_size=8), strip=st.booleans())
def test_admit_either_admits_or_raises_admission_error(parts: list[str], strip: bool):
    text = "".join(parts)
    try:
        admitted = admit(text, strip_top_level=strip)
    except AdmissionError as exc:
        assert exc.message
        return
    # Whatever was admitted admits again unchanged, as plain Python.
    again = admit(admitted.source, markdown=False, entrypoint=admitted.entrypoint)
    assert again.source == admitted.source


def test_check_name_refuses_a_trailing_newline() -> None:
    # "$" in a regex matches before a final newline; names must match in full.
    with pytest.raises(InvalidInput):
        check_name("tool\n")


# -- bad input is a clean refusal (issue 7): exit 2, one line, never exit 70 ----------

_HUGE_HEX = "0x" + "f" * 4000  # 16,000 bits: more digits than JSON (or int->str) can take


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (f"def f(x: int = {_HUGE_HEX}) -> int:\n    return 1\n", "cannot be written as JSON"),
        (f"def f(*, x: list = [1, {_HUGE_HEX}]) -> int:\n    return 1\n", "cannot be written as JSON"),
        (f"def f(x: tuple = ({_HUGE_HEX},)) -> int:\n    return 1\n", "cannot be written as JSON"),
        ("def f(x: int = " + "9" * 5000 + ") -> int:\n    return 1\n", "syntax error"),
        (f"from typing import Literal\ndef f(x: Literal[{_HUGE_HEX}]) -> int:\n    return 1\n", "JSON"),
        (f"from typing import Literal\ndef f(x: int) -> Literal[{_HUGE_HEX}]:\n    return 1\n", "JSON"),
        (f"from typing import Literal\ndef f(x: 'Literal[{_HUGE_HEX}]') -> int:\n    return 1\n", "JSON"),
        ("def f(x: list = " + "[" * 2000 + "]" * 2000 + ") -> int:\n    return 1\n", "nested"),
        ("def f(x: int = " + "-" * 100_000 + "1) -> int:\n    return 1\n", "nested too deeply"),
        ("def f(x: int = 1) -> int:\n    return " + "x." * 50_000 + "real\n", "nested too deeply"),
        ("def f(x: int = " + "lambda: " * 3000 + "1) -> int:\n    return 1\n", "nested too deeply"),
    ],
    ids=[
        "hex-default",
        "hex-in-list-default",
        "hex-in-tuple-default",
        "decimal-default",
        "literal-annotation",
        "literal-return",
        "string-annotation",
        "deep-list-default",
        "deep-unary-default",
        "deep-attribute-chain",
        "deep-lambda-default",
    ],
)
def test_bad_source_at_add_is_refused_with_exit_2(tmp_path: Path, source: str, why: str) -> None:
    from click.testing import CliRunner
    from toolcrib.cli import cli

    path = tmp_path / "tool.py"
    path.write_text(source)
    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), "add", str(path)])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert why in lines[0], lines[0]


@pytest.mark.parametrize(
    "source",
    [
        "def f(x: int = " + "9" * 4000 + ") -> int:\n    return 1\n",  # ~13,300 bits: JSON can hold it
        "def f(x: int = 1) -> int:\n    return " + _HUGE_HEX + "\n",  # in the body: never JSON
        "def f(x: '" + "-" * 100_000 + "1') -> int:\n    return 1\n",  # a string annotation too deep to read
    ],
    ids=["4000-digit-default", "huge-literal-in-body", "deep-string-annotation"],
)
def test_large_but_harmless_source_is_admitted(tmp_path: Path, source: str) -> None:
    from click.testing import CliRunner
    from toolcrib.cli import cli

    path = tmp_path / "tool.py"
    path.write_text(source)
    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), "add", str(path), "--json"])
    assert result.exit_code == 0, (result.exit_code, result.output)


def test_a_tests_file_nested_past_what_can_be_stored_is_refused_with_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from toolcrib.cli import cli

    tool = tmp_path / "tool.py"
    tool.write_text("def f(x: int = 1) -> int:\n    return 1\n")
    tests = tmp_path / "tests.json"
    tests.write_text('[{"args": {"x": 1}, "expected": ' + "[" * 500 + "]" * 500 + "}]")
    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "r.db"), "add", str(tool), "--tests", str(tests)])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "nested deeper than" in result.stderr and "Traceback" not in result.stderr
