"""Loading a lock's packages into a process that will soon read no files.

A restricted-backend child can import only what its zygote loaded before the
jail closed, and a runtime-image container should not pay for big imports on
the call's clock. So the packages a lock provides (`Lock.imports`) are
imported up front, and the few whose first real use still imports
submodules or reads data files lazily (pandas' groupby and formatting,
sympy's solvers and printers, numpy's linear algebra) are exercised once
with a small typical use: afterwards a forked child finds everything it
needs already in memory.

Imports only the standard library (the zygote and the Docker harness load it
without toolcrib).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import time
import warnings
from typing import Any

__all__ = ["THREAD_ENV", "WARMUPS", "PreloadError", "preload"]


class PreloadError(Exception):
    """A package failed to import (or to warm up). In the restricted
    backend's zygote this runs inside the zygote's own jail, so a package
    that reaches for a file, the network or a process at import time ends
    here, with its own message."""


# Numerical libraries start a pool of threads at import (OpenBLAS, OpenMP,
# MKL). A jailed child can start no thread at all, and one per call is all a
# sandboxed tool needs: the process that imports them gets these.
THREAD_ENV: dict[str, str] = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# A small, typical use of each package whose lazy imports matter. Run in the
# zygote (or the harness) before any tool code exists: trusted code.
WARMUPS: dict[str, str] = {
    "numpy": """
import numpy as np
a = np.arange(12.0).reshape(3, 4)
b = (a @ a.T).sum(axis=0)
np.linalg.solve(np.eye(2) * 2.0, np.ones(2)); np.linalg.inv(np.eye(2)); np.linalg.eigvals(np.eye(2))
np.random.default_rng(0).random(3); np.random.seed(0); np.random.rand(2)
np.mean(a, axis=0); np.std(a); np.median(a); np.percentile(a, 50); np.unique(np.array([2, 1, 2]))
np.array(["x", "y"]).astype(str); np.asarray([[1, 2], [3, 4]]).tolist(); repr(a); str(a); a.dtype.name
np.float64(1.5).item(); np.int64(2).item(); np.isnan(np.nan); np.polyfit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0], 1)
""",
    "pandas": """
import pandas as pd
df = pd.DataFrame([{"a": 1, "b": "x", "c": 1.5}, {"a": 2, "b": "y", "c": None}, {"a": 3, "b": "x", "c": 2.5}])
pd.DataFrame({"columns": [1]}); pd.DataFrame([[1, 2]], columns=["p", "q"]); pd.Series([1, 2]).tolist()
g = df.groupby("b")["a"].sum(); df.groupby("b").agg({"a": "mean", "c": "max"}); df.groupby("b").size()
df.describe(); df.sort_values("a", ascending=False); df.merge(df, on="b"); df.fillna(0); df.dropna()
df["a"].mean(); df["c"].isna().sum(); df[df["a"] > 1]; df.loc[0, "a"]; df.iloc[0]; df.head(2); df.value_counts("b")
df.pivot_table(index="b", values="a", aggfunc="sum"); df.apply(lambda r: r["a"] * 2, axis=1)
df.to_dict(orient="records"); df.to_dict(); repr(df); str(df); df.to_string(); df.to_csv(); df.to_json()
pd.concat([df, df]); df.rename(columns={"a": "A"}); df.reset_index(); df.set_index("b"); df.astype({"a": float})
pd.to_datetime(["2020-01-01", "2020-02-03"]); pd.Timestamp("2020-01-01").isoformat(); pd.isna(df)
df["b"].str.upper(); df["a"].rolling(2).mean(); df["a"].cumsum(); df.nlargest(1, "a"); df.corr(numeric_only=True)
""",
    "sympy": """
import sympy as sp
x, y = sp.symbols("x y")
e = sp.sympify("x**2 + 2*x + 1")
sp.simplify(e); sp.factor(e); sp.expand((x + 1) ** 3); sp.solve(x**2 - 1, x); sp.solveset(x**2 - 4, x)
sp.diff(sp.sin(x) * x, x); sp.integrate(x**2, (x, 0, 1)); sp.integrate(sp.exp(-x), x); sp.limit(sp.sin(x) / x, x, 0)
sp.series(sp.cos(x), x, 0, 4); sp.Matrix([[1, 2], [3, 4]]).det(); sp.Matrix([[1, 2], [3, 4]]).inv()
sp.N(sp.pi, 10); sp.Rational(1, 3) + sp.sqrt(8); sp.latex(e); str(e); repr(e); sp.nsimplify(0.5)
sp.linsolve([x + y - 2, x - y], x, y); sp.isprime(97); sp.factorint(360); sp.gcd(12, 18); sp.binomial(5, 2)
sp.summation(x, (x, 1, 10)); sp.Eq(x, 1); sp.lambdify(x, x**2)(2); sp.trigsimp(sp.sin(x)**2 + sp.cos(x)**2)
sp.dsolve(sp.Derivative(sp.Function("f")(x), x) - sp.Function("f")(x)); sp.Poly(e, x).all_coeffs(); sp.roots(e, x)
""",
    "scipy": """
import scipy
import scipy.optimize, scipy.stats, scipy.integrate, scipy.linalg, scipy.special
scipy.optimize.minimize_scalar(lambda v: (v - 1) ** 2); scipy.stats.norm.cdf(0.5); scipy.integrate.quad(lambda v: v, 0, 1)
""",
}


# The warm-ups' namespaces, kept alive (the time zones above live only
# as long as someone holds them).
_KEPT: list[dict[str, Any]] = []

# Submodules never imported ahead: test suites, their helpers, plotting (GUI
# back ends), command-line entry points (``__main__`` runs a program).
_SKIP_PARTS = frozenset({"tests", "test", "testing", "conftest", "benchmarks", "_pytest", "plotting", "__main__"})
# An upper bound on the eager import of submodules (one package's worth of
# pathological imports must not hold a zygote's start up for long).
SUBMODULE_SECONDS = 20.0


def _import_submodules(names: list[str], deadline: float) -> tuple[int, int]:
    """Import every submodule of these packages that imports cleanly;
    returns (imported, failed). Whatever a submodule prints or warns at
    import is dropped; any failure only means that submodule stays out."""
    imported = failed = 0
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        for name in names:
            path = getattr(importlib.import_module(name), "__path__", None)
            if path is None:
                continue  # a plain module has no submodules
            for info in pkgutil.walk_packages(path, name + ".", onerror=lambda _name: None):
                if time.monotonic() > deadline:
                    return imported, failed
                if _SKIP_PARTS.intersection(info.name.split(".")):
                    continue
                try:
                    importlib.import_module(info.name)
                    imported += 1
                except (Exception, SystemExit):  # noqa: BLE001 - optional dependencies, platform modules
                    failed += 1
    return imported, failed


def preload(names: tuple[str, ...] | list[str], *, submodules: bool = False) -> dict[str, Any]:
    """Import each module and run its warm-up, if it has one. Raises
    PreloadError naming the module and its own error: a lock whose packages
    do not import is not a sandbox worth starting.

    ``submodules`` (the restricted backend's lock zygote, whose children can
    import nothing later): also import every submodule of these packages
    that imports cleanly (`numpy.fft`, `pandas.core.reshape`, `sympy.stats`
    ... are otherwise loaded lazily on first use), except tests, plotting
    and entry points, within `SUBMODULE_SECONDS`."""
    loaded: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
            code = WARMUPS.get(name)
            if code is not None:
                namespace: dict[str, Any] = {"__name__": "warmup"}
                exec(compile(code, f"<warm-up of {name}>", "exec"), namespace)
                _KEPT.append(namespace)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the package's own failure, named
            raise PreloadError(f"importing {name!r} failed in the jail: {type(exc).__name__}: {exc}") from None
        loaded.append(name)
    facts: dict[str, Any] = {"preloaded": loaded}
    if submodules:
        imported, failed = _import_submodules(loaded, time.monotonic() + SUBMODULE_SECONDS)
        facts.update(preloaded_submodules=imported, preload_failures=failed)
    return facts
