"""The dispatcher's search (registry/search.py): the FTS5 index and its
triggers, any-word ranking with scores, the fit threshold, verified-only, and
the CLI's "no tool fits" (exit 3). Real SQLite; verification (only the
verified-only filter depends on it) runs on a `FakeBackend` injected into
`reg`: the search is under test here, not the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from toolcrib.registry.migrations import MIGRATIONS
from toolcrib.registry.search import FIT_THRESHOLD, SearchHit, query_words, split_identifiers
from toolcrib.registry.store import open_database, utc_now, write_transaction
from toolcrib.registry.versions import sha256_text
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

SORT = '''\
def sort_words(words: list[str]) -> list[str]:
    """Sort words alphabetically, ignoring case."""
    return sorted(words, key=lambda w: w.lower())
'''

DAYS = '''\
from datetime import date


def days_between(start: str, end: str) -> int:
    """Number of days from start to end (ISO dates)."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days
'''

# A camelCase entrypoint and a parameter whose name says more than the docstring.
MSE = '''\
def meanSquaredError(predicted: list[float], actual: list[float]) -> float:
    """Average of the squared differences."""
    return sum((p - a) ** 2 for p, a in zip(predicted, actual)) / len(actual)
'''

TEMP = '''\
def convert(fahrenheit_value: float) -> float:
    """Convert a temperature."""
    return (fahrenheit_value - 32) * 5 / 9
'''

# Nothing but its test question mentions a palindrome.
MIRROR = '''\
def mirror(text: str) -> bool:
    """True if text equals its reverse."""
    return text == text[::-1]
'''
MIRROR_TESTS = [
    {
        "name": "is it a palindrome",
        "snippet": "question = 'Is racecar a palindrome?'\nans = mirror('racecar')",
        "expected": True,
    }
]


@pytest.fixture
def registry_backends() -> dict[str, FakeBackend]:
    """`reg` verifies on the fake (plain exec of the module's own tools)."""
    return {"restricted": FakeBackend(name="restricted")}


@pytest.fixture
def reg(reg: Registry) -> Registry:
    """The shared registry, with the tools searched here."""
    reg.add(SORT, tests=[{"args": {"words": ["b", "a"]}, "expected": ["a", "b"]}])
    reg.add(DAYS, tests=[{"args": {"start": "2024-01-01", "end": "2024-01-03"}, "expected": 2}])
    reg.add(MSE)
    reg.add(TEMP)
    reg.add(MIRROR, tests=MIRROR_TESTS)
    return reg


def refs(hits: list[SearchHit]) -> list[str]:
    return [h.ref for h in hits]


def test_split_identifiers_and_query_words() -> None:
    assert "(mean Squared Error)" in split_identifiers("meanSquaredError")
    assert "(parse HTTP Date)" in split_identifiers("parseHTTPDate")
    assert "(sort words)" in split_identifiers("sort_words")
    assert split_identifiers("plain words") == "plain words"
    # Stopwords, bare numbers and quoted data are not what is asked for.
    assert query_words("How many days are there between 2024 and 2025?") == ["many", "days", "between"]
    assert query_words("Is 'A man, a plan' a palindrome?") == ["palindrome"]
    assert query_words("'racecar'") == ["racecar"]  # unless the quote is all there is
    assert query_words("sortWords") == ["sortwords", "sort", "words"]
    assert query_words("") == [] and query_words("the of 42") == []


def test_any_word_matches_and_is_ranked(reg: Registry) -> None:
    # All-words matching found nothing for a request with a word no tool has.
    hits = reg.search("please sort these words quickly", min_score=0)
    assert refs(hits)[0] == "sort_words@1.0.0"
    assert hits[0].matched == ["sort", "words"]
    assert 0 < hits[0].score <= 1 and hits[0].bm25 > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_stemming_identifiers_parameters_and_test_questions_are_indexed(reg: Registry) -> None:
    assert refs(reg.search("sorting"))[0] == "sort_words@1.0.0"  # porter stemming
    assert refs(reg.search("squared error"))[0] == "meanSquaredError@1.0.0"  # camelCase split
    assert refs(reg.search("predicted and actual"))[0] == "meanSquaredError@1.0.0"  # parameter name
    assert refs(reg.search("fahrenheit"))[0] == "convert@1.0.0"  # snake_case parameter
    assert refs(reg.search("check a palindrome"))[0] == "mirror@1.0.0"  # only in its test question


def test_score_threshold_and_limit(reg: Registry) -> None:
    # One common word out of many: a weak match, kept only when asked for.
    weak = "words translate french poetry novels essays letters"
    assert reg.search(weak, min_score=0) != []
    assert all(h.score < 0.5 for h in reg.search(weak, min_score=0))
    assert reg.search(weak, min_score=0.5) == []
    assert reg.search("translate into french") == []
    assert all(h.score >= FIT_THRESHOLD for h in reg.search("days between dates sorted words"))
    assert len(reg.search("days words error fahrenheit", limit=2, min_score=0)) == 2
    assert reg.search("days", limit=0) == []


def test_hostile_queries_are_plain_words(reg: Registry) -> None:
    for query in ['"; DROP TABLE versions; --', "NEAR(sort words)", "sort* OR words AND", "^days", "{name}: sort"]:
        reg.search(query, min_score=0)  # no FTS5 syntax error
    assert refs(reg.search("NEAR(sort words)"))[0] == "sort_words@1.0.0"
    assert reg.list()  # the table is still there


def test_only_newest_live_versions_and_verified_only(reg: Registry) -> None:
    reg.add(SORT.replace("ignoring case", "ignoring letter case"))  # sort_words@1.0.1, unverified
    assert refs(reg.search("sort words")) == ["sort_words@1.0.1"]
    assert reg.search("sort words", verified_only=True) == []
    reg.verify("days_between")
    assert refs(reg.search("days between", verified_only=True)) == ["days_between@1.0.0"]
    assert reg.search("days between", verified_only=True)[0].status == "verified"
    reg.yank("days_between", "wrong")
    assert reg.search("days between") == []


def test_the_index_follows_the_versions_table(tmp_path: Path) -> None:
    """The triggers keep the index right for any writer, even one that does not
    fill search_terms (raw columns are indexed instead)."""
    with Registry(tmp_path / "r.db") as reg:
        now = utc_now()
        with write_transaction(reg.db):
            reg.db["versions"].insert(
                {
                    "name": "raw_tool",
                    "version": "1.0.0",
                    "sha256": "cd" * 32,
                    "entrypoint": "raw_tool",
                    "source": "def raw_tool():\n    return 1\n",
                    "signature": json.dumps(
                        {
                            "input_schema": {"type": "object", "properties": {"zebra_count": {}}},
                            "description": "Count zebras.",
                        }
                    ),
                    "tests": "[]",
                    "description": "Count zebras.",
                    "created_at": now,
                    "registered_by": "raw",
                    "registered_at": now,
                    "source_sha256": sha256_text("x"),
                    "metadata": "{}",
                }
            )
        assert refs(reg.search("zebras"))[0] == "raw_tool@1.0.0"
        with write_transaction(reg.db):
            reg.db.execute(
                "UPDATE versions SET description = 'Count giraffes.', search_terms = NULL WHERE name = 'raw_tool'"
            )
        assert refs(reg.search("giraffes"))[0] == "raw_tool@1.0.0"
        with write_transaction(reg.db):
            reg.db.execute("DELETE FROM versions WHERE name = 'raw_tool'")
        assert reg.db.execute("SELECT count(*) FROM search_index").fetchone()[0] == 0


def test_m004_indexes_versions_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    MIGRATIONS.apply(db, stop_before="m004_search_ranking")
    now = utc_now()
    with write_transaction(db):
        db["versions"].insert(
            {
                "name": "meanSquaredError",
                "version": "1.0.0",
                "sha256": "ab" * 32,
                "entrypoint": "meanSquaredError",
                "source": MSE,
                "signature": json.dumps(
                    {
                        "input_schema": {"type": "object", "properties": {}},
                        "description": "Average of the squared differences.",
                    }
                ),
                "tests": "[]",
                "description": "Average of the squared differences.",
                "created_at": now,
                "registered_by": "old",
                "registered_at": now,
                "source_sha256": sha256_text(MSE),
                "metadata": "{}",
            }
        )
    db.close()
    with Registry(path) as reg:
        assert "versions_fts" not in reg.db.table_names()  # m002's index is gone
        assert refs(reg.search("squared error"))[0] == "meanSquaredError@1.0.0"  # split at migration time


# -- CLI -----------------------------------------------------------------------


@pytest.fixture
def cli_registry(reg: Registry) -> Path:
    """The CLI searches `reg`'s tools."""
    return reg.path


def test_cli_search_json_scores(tc) -> None:
    result = tc("search", "how many days between two dates", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data[0]["ref"] == "days_between@1.0.0"
    assert 0 < data[0]["score"] <= 1 and data[0]["bm25"] > 0 and "days" in data[0]["matched"]
    assert "source" not in data[0]


def test_cli_search_table_and_limit(tc) -> None:
    result = tc("search", "sort words days error fahrenheit", "--limit", "2", "--min-score", "0")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "VERSION", "SCORE"] and len(lines) == 3


def test_cli_no_tool_fits_exits_3(tc) -> None:
    result = tc("search", "translate good morning into French")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().startswith("Error: no tool fits") and len(result.stderr.strip().splitlines()) == 1
    as_json = tc("search", "translate good morning into French", "--json")
    assert as_json.exit_code == 3 and json.loads(as_json.stdout) == []
    # A verified-only search with only unverified matches does not fit either.
    unverified = tc("search", "sort words", "--verified-only")
    assert unverified.exit_code == 3 and "verified" in unverified.stderr
    assert tc("search", "sort words", "--min-score", "2").exit_code == 2
    for empty in ("", "the of 42", "   "):
        nothing = tc("search", empty)
        assert nothing.exit_code == 2 and "no words" in nothing.stderr
