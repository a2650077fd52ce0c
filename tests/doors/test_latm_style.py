"""Tools in the style a tool-making model writes (LATM): ordinary Python with
helpers, imports and small classes. The policy must not get in their way:
each one runs through the real backend and returns the right answer."""

from __future__ import annotations

import itertools

import pytest
from toolcrib.sandbox import Job, Limits, run

LIMITS = Limits(cpu=2, wall=5, memory=256, output=256)

WORD_SORTER = '''
def sort_words(text: str) -> str:
    """Sort the words of a sentence alphabetically, case-insensitively."""
    words = text.split()
    return " ".join(sorted(words, key=lambda w: w.lower()))
'''

DYCK = '''
from typing import List

PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
CLOSERS = {v: k for k, v in PAIRS.items()}

def complete_dyck(prefix: str) -> str:
    """Return the closing brackets that complete a Dyck-language prefix."""
    stack: List[str] = []
    for token in prefix.split():
        if token in CLOSERS:
            stack.append(token)
        elif token in PAIRS:
            if not stack or stack[-1] != PAIRS[token]:
                raise ValueError("unbalanced input at %r" % token)
            stack.pop()
    return " ".join(CLOSERS[t] for t in reversed(stack))
'''

CRT = '''
def smallest_with_remainders(moduli, remainders, limit=100000):
    """Brute force: the smallest n >= 1 with n % m == r for every pair."""
    pairs = list(zip(moduli, remainders))
    for n in range(1, limit):
        if all(n % m == r for m, r in pairs):
            return n
    return None
'''

DEDUCTION = '''
import itertools

def order_objects(objects, constraints):
    """Find the left-to-right orders that satisfy every constraint.

    constraints: list of [kind, a, b] with kind "left_of" (a somewhere left
    of b) or "first"/"last" (a at that end; b ignored)."""
    def ok(order):
        pos = {name: i for i, name in enumerate(order)}
        for kind, a, b in constraints:
            if kind == "left_of" and not pos[a] < pos[b]:
                return False
            if kind == "first" and pos[a] != 0:
                return False
            if kind == "last" and pos[a] != len(order) - 1:
                return False
        return True
    return [list(p) for p in itertools.permutations(objects) if ok(p)]
'''

SHUFFLE = '''
from collections import OrderedDict

class Table:
    """Who holds which object, updated by swaps."""

    def __init__(self, holdings):
        self.holdings = OrderedDict(holdings)
        self.swaps = 0

    def swap(self, a, b):
        self.holdings[a], self.holdings[b] = self.holdings[b], self.holdings[a]
        self.swaps += 1

    def __repr__(self):
        return "Table(%d swaps)" % self.swaps

def track_swaps(holdings, swaps):
    table = Table(holdings)
    for a, b in swaps:
        table.swap(a, b)
    print("after", table)
    return {"final": dict(table.holdings), "swaps": table.swaps}
'''

STATS_TOOL = """
import math
import re
from collections import Counter, defaultdict
from fractions import Fraction
import functools
import heapq
import json

NUMBER = re.compile(r"-?\\d+(?:\\.\\d+)?")

class Summary(object):
    def __init__(self, values):
        self.values = sorted(values)

    @property
    def median(self):
        n = len(self.values)
        mid = n // 2
        if n % 2:
            return self.values[mid]
        return (self.values[mid - 1] + self.values[mid]) / 2

    def as_dict(self):
        return {"n": len(self.values), "median": self.median, "max": max(self.values)}

def numbers_from(text):
    return [float(x) for x in NUMBER.findall(text)]

@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def analyse(text: str) -> dict:
    nums = numbers_in(text)
    words = Counter(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    by_len = defaultdict(list)
    for w in sorted(words):
        by_len[len(w)].append(w)
    summary = Summary(nums).as_dict()
    summary.update({
        "top": words.most_common(1)[0][0],
        "by_len": {str(k): v for k, v in by_len.items()},
        "gcd": math.gcd(*[int(x) for x in nums]),
        "third": str(Fraction(1, 3) + Fraction(1, 6)),
        "smallest": heapq.nsmallest(2, nums),
        "fib": fib(30),
        "label": "{name}: {n:>3}".format(name="nums", n=len(nums)),
        "json": json.loads(json.dumps({"k": [1, 2]})),
    })
    return summary

def numbers_in(text):
    return numbers_safe(text)

def numbers_safe(text):
    return numbers_from(text)
"""


def _call(source: str, entrypoint: str, backend: str, **args: object):
    return run(Job(source=source, entrypoint=entrypoint, args=args, limits=LIMITS), backend)


def test_sort_words(backend: str) -> None:
    text = "pear Apple banana cherry apricot"
    result = _call(WORD_SORTER, "sort_words", backend, text=text)
    assert result.status == "ok", result
    assert result.result == " ".join(sorted(text.split(), key=str.lower))


@pytest.mark.parametrize("prefix,expected", [("( [ {", "} ] )"), ("< ( ) [", "] >"), ("( )", "")])
def test_dyck_completion(backend: str, prefix: str, expected: str) -> None:
    result = _call(DYCK, "complete_dyck", backend, prefix=prefix)
    assert result.status == "ok", result
    assert result.result == expected


def test_dyck_reports_tool_errors_with_line(backend: str) -> None:
    result = _call(DYCK, "complete_dyck", backend, prefix="( ]")
    assert result.status == "error"
    assert result.error is not None and result.error.type == "ValueError"
    assert result.error.line == 15  # the `raise` line in DYCK


def test_chinese_remainder_brute_force(backend: str) -> None:
    moduli, remainders = [3, 5, 7], [2, 3, 2]
    expected = next(n for n in itertools.count(1) if all(n % m == r for m, r in zip(moduli, remainders)))
    result = _call(CRT, "smallest_with_remainders", backend, moduli=moduli, remainders=remainders)
    assert result.status == "ok", result
    assert result.result == expected == 23


def test_logical_deduction(backend: str) -> None:
    objects = ["owl", "hawk", "robin"]
    constraints = [["left_of", "hawk", "owl"], ["last", "robin", None]]
    result = _call(DEDUCTION, "order_objects", backend, objects=objects, constraints=constraints)
    assert result.status == "ok", result
    assert result.result == [["hawk", "owl", "robin"]]


def test_tracking_shuffled_objects(backend: str) -> None:
    holdings = [["alice", "red ball"], ["bob", "blue ball"], ["claire", "green ball"]]
    swaps = [["alice", "bob"], ["bob", "claire"], ["alice", "claire"]]
    result = _call(SHUFFLE, "track_swaps", backend, holdings=holdings, swaps=swaps)
    assert result.status == "ok", result
    assert result.result == {
        "final": {"alice": "red ball", "bob": "green ball", "claire": "blue ball"},
        "swaps": 3,
    }
    assert result.stdout == "after Table(3 swaps)\n"


def test_snippet_passes_a_lambda_to_the_tool(backend: str) -> None:
    tool = """
def apply_to_all(func, items):
    return [func(x) for x in items]
"""
    snippet = """
question = "square each of 3, 4, 5"
numbers = [int(tok.strip(",")) for tok in question.split()[2:] if tok.strip(",").isdigit()]
ans = apply_to_all(lambda n: n * n, numbers)
"""
    result = run(Job(source=tool, entrypoint="apply_to_all", mode="snippet", snippet=snippet, limits=LIMITS), backend)
    assert result.status == "ok", result
    assert result.result == [9, 16, 25]


def test_snippet_without_ans_returns_printed_text(backend: str) -> None:
    tool = "def double(x):\n    return 2 * x\n"
    result = run(
        Job(source=tool, entrypoint="double", mode="snippet", snippet="print(double(21))", limits=LIMITS), backend
    )
    assert result.status == "ok", result
    assert result.result == "42\n"


def test_tool_with_helpers_imports_and_a_class(backend: str) -> None:
    text = "Apples 3 and pears 12, apples 9 again"
    result = _call(STATS_TOOL, "analyse", backend, text=text)
    assert result.status == "ok", result
    assert result.result == {
        "n": 3,
        "median": 9.0,
        "max": 12.0,
        "top": "apples",
        "by_len": {"3": ["and"], "5": ["again", "pears"], "6": ["apples"]},
        "gcd": 3,
        "third": "1/2",
        "smallest": [3.0, 9.0],
        "fib": 832040,
        "label": "nums:   3",
        "json": {"k": [1, 2]},
    }


# A search tool as models write them: a board copied with copy.deepcopy at
# each step, a state class with a base __init__, its own exception type and
# a bare except as the fallback (all touched by the policy's issue-7 rules).
SLIDING_PUZZLE = '''
import copy
from collections import deque

class PuzzleError(Exception):
    def __init__(self, message):
        Exception.__init__(self, "puzzle: " + message)

class Node(object):
    def __init__(self, board, moves):
        self.board = board
        self.moves = moves

class Start(Node):
    def __init__(self, board):
        super().__init__(board, [])

def neighbours(board):
    n = len(board)
    r, c = next((i, j) for i in range(n) for j in range(n) if board[i][j] == 0)
    for dr, dc, name in ((1, 0, "up"), (-1, 0, "down"), (0, 1, "left"), (0, -1, "right")):
        rr, cc = r + dr, c + dc
        if 0 <= rr < n and 0 <= cc < n:
            nxt = copy.deepcopy(board)
            nxt[r][c], nxt[rr][cc] = nxt[rr][cc], nxt[r][c]
            yield name, nxt

def solve(board: list) -> list:
    """Moves that bring a small sliding puzzle to 1..n*n-1 with the gap last."""
    try:
        n = len(board)
        goal = [[(i * n + j + 1) % (n * n) for j in range(n)] for i in range(n)]
    except:
        raise PuzzleError("not a square board")
    seen = {str(board)}
    queue = deque([Start(board)])
    while queue:
        node = queue.popleft()
        if node.board == goal:
            return node.moves
        for name, nxt in neighbours(node.board):
            if str(nxt) not in seen:
                seen.add(str(nxt))
                queue.append(Node(nxt, node.moves + [name]))
    raise PuzzleError("unsolvable")
'''


def test_search_with_deepcopy_base_init_and_bare_except(backend: str) -> None:
    result = _call(SLIDING_PUZZLE, "solve", backend, board=[[1, 2, 3], [4, 5, 6], [0, 7, 8]])
    assert result.status == "ok", result
    assert result.result == ["left", "left"]
    result = _call(SLIDING_PUZZLE, "solve", backend, board=[[2, 1], [3, 0]])
    assert result.status == "error" and result.error is not None, result
    assert (result.error.type, result.error.message) == ("PuzzleError", "puzzle: unsolvable")
