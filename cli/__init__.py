"""toolcrib.cli: the click command line (being written)."""


def main() -> None:  # pragma: no cover - replaced by the real group
    raise SystemExit("toolcrib CLI not built yet")
