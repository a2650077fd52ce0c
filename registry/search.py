"""The dispatcher's question: is there already a tool for this request?

The index (migration ``m004_search_ranking``) is an FTS5 table with the
porter stemmer over four fields of every version: its name words, its
docstring, its parameters (names and descriptions) and its examples (test
names and snippets, which is where a tool-maker writes the questions a tool
was made for). Identifiers are split into words when a version is indexed
(``sort_words`` and ``sortWords`` both give "sort words"), in Python, into the
``versions.search_terms`` column; plain SQL triggers copy that column into the
index, so any connection that writes a version keeps the index right.

A query is matched on its words, among the version each name resolves to
(the index holds only those, migration m011); FTS5 ranks the matches by its
bm25 and the best ``CANDIDATE_POOL`` are ranked by two numbers (see `rank`
for which words retrieve them):

- ``score`` in [0, 1]: how much of the query the tool covers, each query word
  weighted by how rare it is among the tools (idf), so "sort" in a registry of
  sorters counts for less than "anagram". It does not depend on the size of
  the registry the way raw bm25 does (bm25's idf is clamped to zero when a
  word is in half the documents or more, so a one-tool registry scores its
  perfect match near zero), which is what makes one fixed threshold possible.
- ``bm25``: FTS5's bm25 with per-field weights (higher is better here), the
  tie-breaker between tools that cover the query equally.

A hit whose score is below ``FIT_THRESHOLD`` does not fit; when no hit fits,
the CLI answers "no tool fits" (exit 3). The threshold is calibrated on the
benchmark in ``bench/bench_search.py``; docs/search.md has the numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from pydantic import Field

from .models import ToolVersion
from .store_search import candidate_count, ids_matching, newest_matching_count, top_by_bm25

__all__ = [
    "CANDIDATE_POOL",
    "FIELD_WEIGHTS",
    "FIT_THRESHOLD",
    "SearchHit",
    "ScoredId",
    "index_terms",
    "query_words",
    "rank",
    "split_identifiers",
    "tool_index_terms",
]

# Calibrated on bench/bench_search.py --sweep (docs/search.md): the largest
# threshold at which the most dispatcher decisions are right (the tool among
# the first five that fit, or "no tool fits" when there is none). Higher
# thresholds catch more requests with no tool only by turning away more that
# have one: a word-matching index cannot tell a paraphrase from a miss.
FIT_THRESHOLD = 0.10

# bm25 weights of the index fields, in column order (name, about, params, examples):
# a word in the name says more about what a tool does than one in a test snippet.
FIELD_WEIGHTS = (4.0, 2.0, 1.0, 1.0)

# How many of FTS5's best bm25 matches are scored in Python (coverage, then
# bm25): a version covering more of the query nearly always has the higher
# bm25 too (bm25 sums over the words matched, each weighted by its idf), so
# the best-covering versions are among these; what it saves is scoring every
# match of a common word in a registry of 100,000 versions.
CANDIDATE_POOL = 500

# Query words that say nothing about which tool is meant. Kept short on
# purpose: the idf weight already discounts words every tool has.
_STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be been being both but by can could
    did do does doing done each few for from further give given had has have having he her here him his
    how i if in into is it its itself just let me more most my no nor not of off on once only or other our
    out over own please same she should so some such than that the their them then there these they this
    those through to too under until up us very was we were what when where which while who whom why will
    with would you your yours
    """.split()
)

_WORD = re.compile(r"[A-Za-z0-9]+")
_CAMEL = (re.compile(r"([a-z0-9])([A-Z])"), re.compile(r"([A-Z]+)([A-Z][a-z])"))
_MAX_QUERY_WORDS = 32
# A quoted span: "..." or '...' where the quote marks are not apostrophes inside a word.
_QUOTED = re.compile(r"\"[^\"]*\"|(?<![A-Za-z])'[^']*'(?![A-Za-z])")


def split_identifiers(text: str) -> str:
    """Text with every identifier also given as its words: ``parseHTTPDate`` ->
    ``parseHTTPDate (parse HTTP Date)``, ``sort_words`` -> ``sort_words (sort words)``.

    The unsplit form stays, so a query that names the identifier still finds it.
    """
    out: list[str] = []
    for token in re.findall(r"[A-Za-z0-9_]+|[^A-Za-z0-9_]+", text):
        out.append(token)
        if not token[0].isalnum() and token[0] != "_":
            continue
        spaced = token.replace("_", " ")
        for pattern in _CAMEL:
            spaced = pattern.sub(r"\1 \2", spaced)
        if spaced.strip() != token:
            out.append(" (" + " ".join(spaced.split()) + ")")
    return "".join(out)


def _param_text(signature: dict[str, Any]) -> str:
    schema = signature.get("input_schema") or {}
    props = schema.get("properties") or {}
    parts: list[str] = []
    for name, prop in props.items():
        parts.append(split_identifiers(str(name)))
        if isinstance(prop, dict) and isinstance(prop.get("description"), str):
            parts.append(prop["description"])
    return "\n".join(parts)


def _example_text(tests: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for case in tests:
        if isinstance(case.get("name"), str):
            parts.append(case["name"])
        if isinstance(case.get("snippet"), str):
            parts.append(split_identifiers(case["snippet"]))
    return "\n".join(parts)


def index_terms(
    name: str, entrypoint: str, description: str | None, signature: dict[str, Any], tests: list[dict[str, Any]]
) -> str:
    """The ``versions.search_terms`` value of a version (from its stored
    columns, signature and tests as JSON): the words of each indexed field as
    one JSON object, which the triggers copy into the index."""
    names = name if entrypoint == name else f"{name} {entrypoint}"
    return json.dumps(
        {
            "name": split_identifiers(names),
            "about": description or "",
            "params": _param_text(signature),
            "examples": _example_text([t for t in tests if isinstance(t, dict)]),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def tool_index_terms(tool: ToolVersion) -> str:
    """`index_terms` of a version being stored."""
    return index_terms(
        tool.name,
        tool.entrypoint,
        tool.signature.description,
        tool.signature.model_dump(mode="json"),
        [t.model_dump(mode="json") for t in tool.tests],
    )


def query_words(query: str) -> list[str]:
    """The words of a query that can pick a tool: identifiers split, lower case,
    no stopwords, no bare numbers (in a request they are arguments, not what
    is asked for), each once, at most 32."""
    text = query or ""
    # Quoted text in a request is the data the tool is to work on ("Is 'level'
    # a palindrome?"), not what is asked for; unless it is all there is.
    unquoted = _QUOTED.sub(" ", text)
    if _WORD.search(unquoted):
        text = unquoted
    seen: list[str] = []
    for word in _WORD.findall(split_identifiers(text)):
        word = word.lower()
        if len(word) < 2 or word.isdigit() or word in _STOPWORDS or word in seen:
            continue
        seen.append(word)
        if len(seen) == _MAX_QUERY_WORDS:
            break
    return seen


class SearchHit(ToolVersion):
    """A version found by `Registry.search`: the version itself plus how well it fits."""

    score: float = Field(description="share of the query's (idf-weighted) words this tool covers, 0..1")
    bm25: float = Field(description="FTS5 bm25 relevance with field weights; higher is better")
    matched: list[str] = Field(default_factory=list, description="the query words found in this tool")


@dataclass(frozen=True)
class ScoredId:
    """One ranked version id, before its row is loaded."""

    id: int
    score: float
    bm25: float
    matched: tuple[str, ...]


def rank(db: sqlite_utils.Database, query: str, *, verified_only: bool, pool: int = CANDIDATE_POOL) -> list[ScoredId]:
    """The versions names resolve to (verified ones with `verified_only`)
    that match words of `query`, best first.

    FTS5 ranks the matches by its bm25 and only the best `pool` of them are
    scored here, so the work in Python does not grow with the registry. The
    words that retrieve them are those found in at most half of the tools
    (every word when none is): bm25 gives a word in more than half of the
    documents no weight, so leaving it out changes no bm25, and a version
    matching nothing else covers too little of the query to fit. Order:
    score (coverage), then bm25, then id. Old, yanked or unverified
    versions never appear and do not count towards the words' idf.
    """
    words = query_words(query)
    if not words:
        return []
    total = candidate_count(db.conn, verified_only=verified_only)
    if not total:
        return []
    # Each word's documents: its posting list (fast in FTS5), read once.
    rows_of = {word: ids_matching(db.conn, word) for word in words}
    if verified_only:
        counts = {w: newest_matching_count(db.conn, w, verified_only=True) for w in words}
    else:
        counts = {w: len(rows) for w, rows in rows_of.items()}
    telling = [w for w in words if 0 < counts[w] <= total / 2] or words
    top = top_by_bm25(db.conn, telling, FIELD_WEIGHTS, limit=pool, verified_only=verified_only)
    # A word no tool has weighs as much as the rarest word a tool has: an
    # unknown word makes a tool fit less, never more.
    weight = {w: math.log(1.0 + total / max(counts[w], 1)) for w in words}
    all_weight = sum(weight.values())
    scored: list[ScoredId] = []
    for vid, value in top:
        matched = tuple(w for w in words if vid in rows_of[w])
        score = sum(weight[w] for w in matched) / all_weight
        scored.append(ScoredId(id=vid, score=round(score, 4), bm25=round(-value, 4), matched=matched))
    scored.sort(key=lambda s: (-s.score, -s.bm25, s.id))
    return scored
