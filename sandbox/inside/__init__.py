"""What runs inside the jail or the container: the standard library and
RestrictedPython only (tests/test_layering.py checks every import).

These modules are loaded three ways, so none may rely on this file or on
``toolcrib``: on the host as ``toolcrib.sandbox.inside.*`` (the host reads
the wire and the policy, and starts ``zygote.py`` by its path); in the
restricted backend's zygote as a private package made from this folder
(``zygote._load_run_job``); in the Docker image as ``tcbox`` (copied there by
``sandbox/image.py``, starting from ``harness`` and ``execute``). Only
relative imports between them, therefore, and nothing from the host side
(``sandbox/*.py``), which may import from here but never the reverse.
"""
