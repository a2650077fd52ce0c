def find_number(congruences: list[tuple[int, int]], lower: int = 1, upper: int = 10000) -> int | None:
    """Find the smallest n in [lower, upper] with n % divisor == remainder for every pair.

    A brute-force search, the way a tool maker writes it for puzzles such as
    "a number leaves remainder 2 when divided by 3 and 3 when divided by 5".

    Args:
        congruences: (divisor, remainder) pairs.
        lower: the smallest candidate.
        upper: the largest candidate.
    """
    for n in range(lower, upper + 1):
        if all(n % divisor == remainder for divisor, remainder in congruences):
            return n
    return None
