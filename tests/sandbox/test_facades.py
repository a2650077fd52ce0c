"""Module facades: each offered name works for ordinary use, nothing else is
reachable, and no real module (or frame, or code) can be reached through one."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest
from attacks.child import run_in_child
from toolcrib.sandbox.inside import execute
from toolcrib.sandbox.inside.facades import FACADES, Facade, guarded_import
from toolcrib.sandbox.inside.guards import STATE, PolicyViolation, guarded_getattr
from toolcrib.sandbox.inside.policy import ALLOWED_MODULES

# Tool code runs in this process: each test starts and ends with fresh guard state.
pytestmark = pytest.mark.usefixtures("fresh_guard_state")


def ok(source: str) -> Any:
    reply = json.loads(execute.run_job({"source": source, "entrypoint": "run", "limits": {"output": 64}}))
    assert reply["status"] == "ok", reply
    return reply["result"]


def test_every_allowed_module_has_a_facade_with_exactly_its_names() -> None:
    for name, rule in ALLOWED_MODULES.items():
        facade = guarded_import(name)
        assert isinstance(facade, Facade) and not isinstance(facade, types.ModuleType)
        for member in rule.names:
            assert hasattr(facade, member), f"{name}.{member}"
        held = {k for k in vars(facade) if not k.startswith("_")}
        assert held == set(rule.names), name


def test_no_facade_member_is_a_module() -> None:
    for name, facade in FACADES.items():
        for member, value in vars(facade).items():
            assert not isinstance(value, types.ModuleType), f"{name}.{member}"


def test_guarded_walk_from_facades_reaches_no_module_frame_or_code() -> None:
    """Follow every public attribute (through the sandbox's own getattr) two
    levels deep from every facade member: no module, frame, code object or
    function globals may turn up."""
    bad = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
    frontier: list[tuple[str, Any]] = [
        (f"{m}.{n}", v) for m, f in FACADES.items() for n, v in vars(f).items() if not n.startswith("_")
    ]
    for _depth in range(2):
        nxt: list[tuple[str, Any]] = []
        for path, obj in frontier:
            assert not isinstance(obj, bad), path
            for attr in dir(obj):
                if attr.startswith("_"):
                    continue
                try:
                    value = guarded_getattr(obj, attr)
                except (PolicyViolation, Exception):  # noqa: BLE001 - refused or raising is fine
                    STATE.reset(1 << 20)
                    continue
                assert not isinstance(value, bad), f"{path}.{attr}"
                if not isinstance(value, (int, float, str, bytes, bool, type(None))):
                    nxt.append((f"{path}.{attr}", value))
        frontier = nxt


def test_facades_are_read_only() -> None:
    with pytest.raises(PolicyViolation, match="read-only"):
        FACADES["json"].dumps = None  # type: ignore[misc]
    with pytest.raises(PolicyViolation, match="read-only"):
        del FACADES["math"].pi


def test_unoffered_names_are_refusals_not_attribute_errors() -> None:
    with pytest.raises(PolicyViolation, match='"json.codecs" is not offered'):
        _ = FACADES["json"].codecs
    assert STATE.violation is not None


@pytest.mark.parametrize(
    "name,fromlist,level,match",
    [
        ("os", (), 0, 'import of "os" is not allowed'),
        ("collections.abc", (), 0, 'import of "collections.abc"'),
        ("json", ("JSONEncoder",), 0, 'offers no "JSONEncoder"'),
        ("string", ("Formatter",), 0, 'offers no "Formatter"'),
        ("operator", ("attrgetter",), 0, 'import of "operator"'),
        ("", ("execute",), 1, "relative import is not allowed"),
        ("importlib", (), 0, 'import of "importlib"'),
    ],
)
def test_import_refusals(name: str, fromlist: tuple, level: int, match: str) -> None:
    with pytest.raises(PolicyViolation, match=match):
        guarded_import(name, None, None, fromlist, level)


def test_import_returns_facades_never_modules() -> None:
    assert guarded_import("json") is FACADES["json"] and guarded_import("json") is not json
    assert guarded_import("json", None, None, ("dumps", "loads")).dumps is json.dumps


def test_math_itertools_functools_heapq_bisect() -> None:
    assert ok("""
import math, itertools, functools, heapq, bisect
from functools import lru_cache, partial, reduce, cmp_to_key
@lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def run():
    h = [5, 1, 4]
    heapq.heapify(h)
    first = heapq.heappop(h)
    xs = [1, 3, 5]
    bisect.insort(xs, 4)
    return [math.gcd(12, 18), math.isqrt(17), round(math.pi, 3), math.comb(5, 2),
            list(itertools.combinations("abc", 2))[:2], list(itertools.accumulate([1, 2, 3])),
            list(itertools.islice(itertools.count(5), 3)), [k for k, g in itertools.groupby("aabb")],
            reduce(lambda a, b: a * b, [1, 2, 3, 4]), partial(pow, 2)(8), fib(40),
            sorted([3, 1, 2], key=cmp_to_key(lambda a, b: b - a)), first, xs, bisect.bisect_left(xs, 4),
            heapq.nlargest(2, [4, 9, 1])]
""") == [
        6,
        4,
        3.142,
        10,
        [["a", "b"], ["a", "c"]],
        [1, 3, 6],
        [5, 6, 7],
        ["a", "b"],
        24,
        256,
        102334155,
        [3, 2, 1],
        1,
        [1, 3, 4, 5],
        2,
        [9, 4],
    ]


def test_collections_and_namedtuple() -> None:
    assert ok("""
from collections import Counter, defaultdict, OrderedDict, deque, namedtuple, ChainMap
Point = namedtuple("Point", "x y")
def run():
    c = Counter("mississippi")
    d = defaultdict(list)
    d["a"].append(1)
    q = deque([1, 2])
    q.appendleft(0)
    q.rotate(1)
    od = OrderedDict(b=1, a=2)
    p = Point(1, y=2)
    return [c.most_common(2), dict(d), list(q), list(od), p, p.x + p.y, type(p) is Point,
            ChainMap({"a": 1}, {"b": 2})["b"], q]
""") == [[["i", 4], ["s", 4]], {"a": [1]}, [2, 0, 1], ["b", "a"], [1, 2], 3, True, 2, [2, 0, 1]]


def test_fractions_decimal_statistics() -> None:
    assert ok("""
from fractions import Fraction
from decimal import Decimal, getcontext, localcontext, ROUND_HALF_UP
import statistics
def run():
    getcontext().prec = 6
    third = Decimal(1) / Decimal(3)
    with localcontext() as ctx:
        ctx.prec = 2
        short = Decimal(1) / Decimal(3)
    return [str(Fraction(3, 4) + Fraction(1, 4)), str(Fraction("0.5").limit_denominator(10)), str(third),
            str(short), str(Decimal("2.675").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
            statistics.mean([1, 2, 3, 4]), statistics.median([3, 1, 2]), statistics.mode("aab"),
            round(statistics.stdev([1, 2, 3, 4]), 4)]
""") == ["1", "1/2", "0.333333", "0.33", "2.68", 2.5, 2, "a", 1.291]


def test_decimal_context_is_reset_between_calls() -> None:
    assert (
        ok("from decimal import getcontext\ndef run():\n    getcontext().prec = 3\n    return getcontext().prec\n") == 3
    )
    assert ok("from decimal import getcontext\ndef run():\n    return getcontext().prec\n") == 28


def test_random_is_an_instance_reseeded_per_call() -> None:
    source = "import random\ndef run():\n    return [random.random() for _ in range(3)]\n"
    assert ok(source) != ok(source)
    seeded = (
        "import random\ndef run():\n    random.seed(7)\n    x = random.randint(1, 100)\n"
        "    random.seed(7)\n    return [x, random.randint(1, 100), random.choice('abc') in 'abc']\n"
    )
    first, second, member = ok(seeded)
    assert first == second and member is True


def test_string_re_json_datetime_copy() -> None:
    assert ok("""
import string, re, json, datetime, copy
def run():
    m = re.search(r"(?P<word>[a-z]+)(\\d+)", "xx abc123")
    pattern = re.compile("b+", re.IGNORECASE)
    day = datetime.date(2024, 2, 28) + datetime.timedelta(days=1)
    stamp = datetime.datetime.strptime("2024-03-01 10:30", "%Y-%m-%d %H:%M")
    nested = {"a": [1, 2]}
    clone = copy.deepcopy(nested)
    clone["a"].append(3)
    return [string.ascii_lowercase[:3], string.capwords("hello world"), m.group("word"), m.groups(),
            m.re.pattern, pattern.sub("-", "aBbBc"), re.split(r",\\s*", "a, b,c"), re.escape("a.b"),
            json.loads('{"k": [1, 2.5, null]}'), json.dumps({"b": 1, "a": 2}, sort_keys=True),
            day.isoformat(), stamp.hour, (datetime.datetime(2024, 1, 2) - datetime.datetime(2024, 1, 1)).days,
            datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc).isoformat(), nested, clone]
""") == [
        "abc",
        "Hello World",
        "abc",
        ["abc", "123"],
        "(?P<word>[a-z]+)(\\d+)",
        "a-c",
        ["a", "b", "c"],
        "a\\.b",
        {"k": [1, 2.5, None]},
        '{"a": 2, "b": 1}',
        "2024-02-29",
        10,
        1,
        "2024-01-01T00:00:00+00:00",
        {"a": [1, 2]},
        {"a": [1, 2, 3]},
    ]


def test_typing_names_are_inert_annotations() -> None:
    assert ok("""
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, TypeVar, cast
import typing
T = TypeVar("T")
def pick(xs: List[T], key: Optional[Callable[[T], Any]] = None) -> Dict[str, Union[int, str]]:
    return {"n": len(xs)}
def run() -> Tuple[int, ...]:
    hint: typing.Optional[int] = cast(int, 3)
    return [pick([1, 2]), hint, int | None is not None]
""") == [{"n": 2}, 3, True]


def test_dangerous_facade_paths_are_refused() -> None:
    cases = {
        "import json\ndef run():\n    return json.decoder\n": '"json.decoder" is not offered',
        "import re\ndef run():\n    return re.sre_compile\n": '"re.sre_compile" is not offered',
        "import re\ndef run():\n    return re.compile('a').scanner('a')\n": "scanner",
        "import string\ndef run():\n    return string.Formatter\n": '"string.Formatter" is not offered',
        "import random\ndef run():\n    return random.Random\n": '"random.Random" is not offered',
        "import functools\ndef run():\n    return functools.wraps\n": '"functools.wraps" is not offered',
        "import datetime\ndef run():\n    return datetime.sys\n": '"datetime.sys" is not offered',
        "from collections import namedtuple\ndef run():\n    return namedtuple('P', 'x', module='os')\n": "",
    }
    for source, fragment in cases.items():
        reply = run_in_child({"source": source})
        assert reply["status"] in ("blocked", "error"), (source, reply)
        if fragment:
            assert reply["status"] == "blocked" and fragment in reply["error"]["message"], (source, reply)


def test_datetime_formatting_works_through_the_time_facade() -> None:
    # datetime's C code imports `time` through the tool's own __import__ for
    # strftime and timetuple; real LATM output (a meeting scheduler) needs it.
    source = """
from datetime import datetime, timedelta
import time
def run():
    start = datetime.strptime("09:30", "%H:%M")
    end = start + timedelta(minutes=90)
    stamp = time.strftime("%Y", time.gmtime(0))
    return [start.strftime("%H:%M"), end.strftime("%H:%M"), end.timetuple().tm_hour, stamp, time.time() > 0]
"""
    reply = json.loads(
        execute.run_job({"source": source, "entrypoint": "run", "mode": "args", "args": {}, "limits": {"output": 64}})
    )
    assert reply["status"] == "ok", reply
    assert reply["result"] == ["09:30", "11:00", 11, "1970", True]


def test_time_facade_offers_only_its_names() -> None:
    source = "import time\ndef run():\n    return time.tzset\n"
    reply = json.loads(
        execute.run_job({"source": source, "entrypoint": "run", "mode": "args", "args": {}, "limits": {"output": 64}})
    )
    assert reply["status"] == "blocked", reply
