"""Code the host compiled once per source, handed to each child with its
job (issue 19: a verification's 400 cases are 400 calls of one source).

A child of the zygote compiled the tool's source itself on every call:
parsing, RestrictedPython's transform and ``compile``, cold after the fork,
some 0.1-0.2 ms of a call's CPU and a fifth of the pages it copies from the
zygote. The transform is the host's own code (`execute._compile`, the same
function the child runs) applied to a source the host already holds, so
the host can compile a source once, keep the code by digest, and send it
marshalled with each job; the child then only unmarshals it.

The job's wire form (`contract.Job.wire`) gains one optional field,
``"compiled"`` (`FIELD`)::

    {"magic": "<bytecode magic, hex>",
     "parts": {"<tool>": {"digest": "<sha256 hex>", "code": "<base64 of marshal.dumps(code)>"},
               "<prelude>": {...}, "<snippet>": {...}}}

It is all or nothing: every part the job compiles (the prelude if it has
one, the tool, the snippet in snippet mode) or none. A part's digest
(`digest`) covers the bytecode magic, the policy (restricted or plain), the
part's name and the texts that decide its code (the prelude and the tool's
source for the tool; those and the snippet for the snippet). The child
(`codes`) recomputes every digest from the texts *in its own job*; any
mismatch, another magic, a part missing or malformed, or anything that is
not a code object of that part's name, and the child ignores the field and
compiles the texts itself, as it always did. So the code a child runs is
always the code of the source it was sent, and a source the host's compile
refuses is never sent as code at all (`execute.compile_parts` gives None):
the child compiles it and refuses it with the same outcome as before.

Imports only the standard library.
"""

from __future__ import annotations

import binascii
import importlib
import marshal
import types
from importlib._bootstrap_external import MAGIC_NUMBER
from typing import Any

_hashes: Any
try:  # the small built-in hash module: hashlib would load OpenSSL into the zygote
    _hashes = importlib.import_module("_sha256")
except ImportError:  # pragma: no cover - a Python without it (3.12 names it _sha2)
    _hashes = importlib.import_module("hashlib")

__all__ = ["FIELD", "MAGIC", "MAX_CODE_BYTES", "MAX_TEXT_BYTES", "codes", "digest", "entry", "parts_of"]

FIELD = "compiled"
MAGIC: str = MAGIC_NUMBER.hex()
# The host compiles only jobs whose texts are at most this big in all (the
# registry admits no source larger, `registry.admission.MAX_SOURCE_BYTES`),
# and sends no code object larger than this.
MAX_TEXT_BYTES = 256 * 1024
MAX_CODE_BYTES = 1024 * 1024


def parts_of(job: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The parts a job compiles, in order, each with the texts that decide
    its code: ``[(filename, texts), ...]``."""
    prelude = job.get("prelude")
    source = job.get("source")
    parts: list[tuple[str, tuple[Any, ...]]] = []
    if prelude is not None:
        parts.append(("<prelude>", (prelude,)))
    parts.append(("<tool>", (prelude, source)))
    if job.get("mode", "args") == "snippet":
        parts.append(("<snippet>", (prelude, source, job.get("snippet"))))
    return parts


def digest(filename: str, texts: tuple[Any, ...], restricted: bool) -> str | None:
    """sha256 over the magic, the policy, the part's name and its texts
    (None where a text is neither a string nor None: such a job is not
    precompiled)."""
    hasher = _hashes.sha256()
    hasher.update(f"{MAGIC}\0{'restricted' if restricted else 'plain'}\0{filename}".encode())
    for text in texts:
        if text is None:
            hasher.update(b"\0n")
        elif type(text) is str:
            data = text.encode("utf-8", "surrogatepass")
            hasher.update(b"\0s%d\0" % len(data))
            hasher.update(data)
        else:
            return None
    return str(hasher.hexdigest())


def entry(parts: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    """The job field for ``{filename: (digest, marshalled code)}``."""
    return {
        "magic": MAGIC,
        "parts": {
            name: {"digest": part_digest, "code": binascii.b2a_base64(code, newline=False).decode("ascii")}
            for name, (part_digest, code) in parts.items()
        },
    }


def codes(job: dict[str, Any], restricted: bool) -> dict[str, types.CodeType] | None:
    """The code objects the host sent with ``job``, by part name, if every
    part the job compiles is there and matches its texts; otherwise None
    (the caller compiles the texts itself). Never raises."""
    sent = job.get(FIELD)
    if type(sent) is not dict or sent.get("magic") != MAGIC or type(sent.get("parts")) is not dict:
        return None
    found: dict[str, types.CodeType] = {}
    try:
        for filename, texts in parts_of(job):
            part = sent["parts"].get(filename)
            if type(part) is not dict or type(part.get("code")) is not str or type(part.get("digest")) is not str:
                return None
            if len(part["code"]) > MAX_CODE_BYTES * 4 // 3 + 4 or part["digest"] != digest(filename, texts, restricted):
                return None
            code = marshal.loads(binascii.a2b_base64(part["code"]))
            if type(code) is not types.CodeType or code.co_filename != filename:
                return None
            found[filename] = code
    except Exception:  # noqa: BLE001 - a bad field is ignored, never an outcome
        return None
    return found
