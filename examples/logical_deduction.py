from itertools import permutations


def _position(index: int, count: int) -> int:
    # Positions are 1-based; negative ones count from the right (-1 is last).
    return index - 1 if index > 0 else count + index


def solve_order(objects: list[str], left_of: list[tuple[str, str]], fixed: dict[str, int] | None = None) -> list[str]:
    """Order objects left to right so that every constraint holds.

    Args:
        objects: the objects to place.
        left_of: (a, b) pairs meaning a is somewhere left of b.
        fixed: object -> 1-based position; negative positions count from the right.
    """
    fixed = fixed or {}
    for perm in permutations(objects):
        where = {name: i for i, name in enumerate(perm)}
        if all(where[a] < where[b] for a, b in left_of) and all(
            where[name] == _position(index, len(perm)) for name, index in fixed.items()
        ):
            return list(perm)
    raise ValueError("no ordering satisfies the constraints")
