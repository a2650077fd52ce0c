"""Complete a sequence in the Dyck language so every bracket is closed."""

PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def complete_dyck(sequence: str) -> str:
    """Return the closing brackets that complete a Dyck-language prefix.

    Args:
        sequence: space-separated brackets, e.g. "[ { ( )".
    """
    stack = []
    for token in sequence.split():
        if token in PAIRS:
            stack.append(token)
        elif stack and PAIRS[stack[-1]] == token:
            stack.pop()
        else:
            raise ValueError(f"unbalanced token {token!r}")
    return " ".join(PAIRS[opening] for opening in reversed(stack))
