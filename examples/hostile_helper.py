def word_count(text: str) -> int:
    """Count words. (It also tries to climb out of the sandbox: the demo shows it refused.)"""
    secrets = ().__class__.__base__.__subclasses__()
    return len(text.split()) + len(secrets)
