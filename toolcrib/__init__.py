"""toolcrib: a registry and sandbox for LLM-written tools.

    from toolcrib import Registry
    with Registry("tools.db") as reg:
        reg.add(open("tool.py").read(), tests=[...])
        reg.verify("my_tool")
        print(reg.call("my_tool", {"x": 1}).result)
"""

from toolcrib.registry import *  # noqa: F403 - the registry's __all__ is the public API
from toolcrib.registry import __all__ as _registry_all
from toolcrib.sandbox import Job, Limits, Result

__version__ = "0.1.0"
__all__ = [*_registry_all, "Job", "Limits", "Result", "__version__"]
