"""`toolcrib browse`'s pages read well (issue 17): the index shows the
registry alone (no empty `_memory` database), the SQL box is not prefilled
with the migrations' bookkeeping, a version's source is shown as code
(monospace, its lines kept) and the audit's details as indented JSON, both
escaped. Through Datasette's own client on the app `browse` serves (no
server, no browser); the tools run on the FakeBackend."""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest
from toolcrib.cli.browse import DATABASE, DIFF_PATH, datasette_for
from toolcrib.registry.models import ProvenanceInput
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry

SOURCE = '''\
def tag(text: str) -> str:
    """Wrap text in a tag."""
    marker = "<script>alert(1)</script>"
    return "<b>" + text + "</b>" if marker else text
'''

TRANSCRIPT = "user: wrap text in a bold tag\nassistant: <b>here</b> is the tool\n"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("browse-pages") / "r.db"
    with Registry(path, actor="tester", backends={"restricted": FakeBackend()}) as registry:
        registry.set_review("none")
        registry.add(
            SOURCE,
            tests=[
                {"name": "wraps", "args": {"text": "a"}, "expected": "<b>a</b>"},
                {"name": "wrong on purpose", "args": {"text": "b"}, "expected": "b"},
            ],
            provenance=ProvenanceInput(generator="human", prompt=TRANSCRIPT),
        )
        assert registry.verify("tag").status == "failed"  # one case fails: evidence of both kinds
        registry.add(SOURCE.replace("<b>", "<i>").replace("</b>", "</i>"), as_new_version=True)
        assert registry.call("tag", {"text": "x"}, allow_unverified=True).status == "ok"
    ds = datasette_for(path)

    async def fetch() -> dict[str, str]:
        out = {}
        for name, url in {
            "index": "/",
            "database": f"/{DATABASE}",
            "versions": f"/{DATABASE}/versions",
            "audit": f"/{DATABASE}/audit",
            "cases": f"/{DATABASE}/case_evidence?ref=tag@1.0.0",
            "transcript": f"/{DATABASE}/transcript?ref=tag@1.0.0",
            "diff": f"{DIFF_PATH}?ref=tag@1.0.1",
            "first": f"{DIFF_PATH}?ref=tag@1.0.0",
        }.items():
            response = await ds.client.get(url)
            assert response.status_code == 200, url
            out[name] = response.text
        missing = await ds.client.get(f"{DIFF_PATH}?ref=nope@1.0.0")
        assert missing.status_code == 404
        out["missing"] = missing.text
        return out

    return asyncio.run(fetch())


def test_the_index_shows_the_registry_alone(pages: dict[str, str]) -> None:
    assert "_memory" not in pages["index"]
    assert f'href="/{DATABASE}"' in pages["index"]


def test_the_sql_box_is_not_prefilled_with_the_migrations_table(pages: dict[str, str]) -> None:
    prefilled = re.search(r'<textarea id="sql-editor" name="sql">([^<]*)</textarea>', pages["database"])
    assert prefilled is not None
    assert "_sqlite_migrations" not in prefilled.group(1)
    assert "_sqlite_migrations" not in pages["database"]  # hidden from the table list too


def test_a_versions_source_is_shown_as_code_and_escaped(pages: dict[str, str]) -> None:
    code = re.search(r'<pre class="toolcrib-code" style="([^"]*)">(.*?)</pre>', pages["versions"], re.S)
    assert code is not None
    assert "monospace" in code.group(1) and "white-space: pre" in code.group(1)
    assert html.unescape(code.group(2)) == SOURCE  # every line, as written
    assert "<script>alert(1)</script>" not in pages["versions"]  # escaped, never markup


def test_the_audit_details_are_indented_json(pages: dict[str, str]) -> None:
    shown = re.findall(r'<pre class="toolcrib-json" style="[^"]*">(.*?)</pre>', pages["audit"], re.S)
    assert shown
    details = [json.loads(html.unescape(block)) for block in shown]
    calls = [d for d in details if d.get("mode") == "args"]
    assert calls and calls[-1]["arguments"] == {"text": "x"}
    assert any("\n  " in html.unescape(block) for block in shown)  # indented, not one long line


def _cells(page: str, column: str) -> list[str]:
    return [html.unescape(c).strip() for c in re.findall(rf'<td class="col-{column}[^"]*">(.*?)</td>', page, re.S)]


def test_evidence_case_by_case(pages: dict[str, str]) -> None:
    assert _cells(pages["cases"], "name") == ["wraps", "wrong on purpose"]
    assert _cells(pages["cases"], "result") == ["pass", "FAIL"]
    actual = _cells(pages["cases"], "actual")
    assert "&lt;b&gt;b&lt;/b&gt;" in pages["cases"] and len(actual) == 2  # the answer, escaped


def test_the_transcript_on_a_page_of_its_own(pages: dict[str, str]) -> None:
    shown = re.search(r'<pre class="toolcrib-text" style="[^"]*">(.*?)</pre>', pages["transcript"], re.S)
    assert shown is not None and html.unescape(shown.group(1)) == TRANSCRIPT
    assert "<b>here</b>" not in pages["transcript"]


def test_the_diff_between_a_version_and_its_predecessor(pages: dict[str, str]) -> None:
    shown = re.search(r'<pre class="toolcrib-diff" style="[^"]*">(.*?)</pre>', pages["diff"], re.S)
    assert shown is not None
    text = html.unescape(re.sub(r"</?span[^>]*>", "", shown.group(1)))
    assert "--- tag@1.0.0" in text and "+++ tag@1.0.1" in text
    assert '-    return "<b>" + text + "</b>" if marker else text' in text
    assert '+    return "<i>" + text + "</i>" if marker else text' in text
    assert "<script>" not in pages["diff"]  # the sources' text, escaped
    assert "first version" in pages["first"] and "nope@1.0.0" in html.unescape(pages["missing"])
