from datetime import date


def days_between(start: str, end: str) -> int:
    """Number of days from start to end (ISO dates, end may be earlier)."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days
