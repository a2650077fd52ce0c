"""Run the attack corpus through the real sandbox backends and check that
every attack is refused or contained and that no canary was touched."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from toolcrib.sandbox import Job, Limits, close_backends, run

from .catalogue import CATALOGUE, REFS
from .corpus import ATTACKS, HELPER_TOOL, Attack, categories

SECRET_ENV = "TOOLCRIB_ATTACK_CANARY"


class _Listener:
    """A loopback TCP listener that records every connection it accepts.
    On a free port the kernel picks (port 0): no other process on the machine
    can hold it, and the corpus gets the real number (``@CANARY_PORT@``)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="canary-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass
class Canaries:
    secret_path: Path
    secret_bytes: bytes
    env_value: str
    watch_dir: Path
    listener: _Listener
    secrets: list[str] = field(default_factory=list)

    def render(self, code: str) -> str:
        return (
            code.replace("@SECRET_PATH@", str(self.secret_path))
            .replace("@SECRET_ENV@", SECRET_ENV)
            .replace("@CANARY_PORT@", str(self.listener.port))
            .replace("@WATCH_DIR@", str(self.watch_dir))
        )

    def check(self, result_json: str) -> None:
        for secret in self.secrets:
            assert secret not in result_json, "a secret came back in the result"
        assert self.secret_path.read_bytes() == self.secret_bytes, "the secret file changed"
        assert self.listener.connections == [], f"the canary listener was reached: {self.listener.connections}"
        assert sorted(p.name for p in self.watch_dir.iterdir()) == [], "a file appeared in the watched directory"


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canaries]:
    base = tmp_path_factory.mktemp("attack-canaries")
    file_secret = "file-secret-" + secrets.token_hex(16)
    env_secret = "env-secret-" + secrets.token_hex(16)
    secret_path = base / "secret.txt"
    secret_path.write_text(file_secret)
    secret_path.chmod(0o644)
    watch_dir = base / "watched"
    watch_dir.mkdir()
    watch_dir.chmod(0o777)
    # The variable must exist before the backends start, so a backend that
    # leaked the host environment into the sandbox would be caught.
    os.environ[SECRET_ENV] = env_secret
    close_backends()
    listener = _Listener()
    try:
        yield Canaries(
            secret_path, secret_path.read_bytes(), env_secret, watch_dir, listener, secrets=[file_secret, env_secret]
        )
    finally:
        listener.close()
        os.environ.pop(SECRET_ENV, None)
        # Leave no warm pools or zygotes behind that saw the canary variable
        # (and none that other suites would count as theirs).
        close_backends()


def _job(attack: Attack, canaries: Canaries) -> Job:
    limits = Limits(cpu=2, wall=5, memory=256, output=256).override(**attack.limits)
    code = canaries.render(attack.code)
    if attack.mode == "snippet":
        return Job(
            source=HELPER_TOOL, entrypoint="apply", mode="snippet", snippet=code, limits=limits, policy=attack.policy
        )
    return Job(source=code, entrypoint="run", limits=limits, policy=attack.policy)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_contained(attack: Attack, backend: str, canaries: Canaries) -> None:
    # The ray backend runs the restricted backend's jail on its nodes: the same attacks apply.
    if attack.applies_to not in ("both", {"ray": "restricted"}.get(backend, backend)):
        pytest.skip(f"{attack.id} targets the {attack.applies_to} backend")
    result = run(_job(attack, canaries), backend)
    assert result.status in attack.expect, f"{attack.id}: {result!r}"
    assert result.status != "ok"
    if result.status == "error" and attack.error_types:
        assert result.error is not None and result.error.type in attack.error_types, f"{attack.id}: {result!r}"
    if result.status == "blocked" and attack.reason:
        assert result.error is not None and attack.reason in result.error.message, f"{attack.id}: {result!r}"
    canaries.check(json.dumps(result.to_json(), ensure_ascii=False))


@pytest.mark.parametrize("attack", CATALOGUE, ids=[a.id for a in CATALOGUE])
def test_catalogue_attack_is_contained(attack: Attack, backend: str, canaries: Canaries) -> None:
    # The public catalogue of known escapes, rewritten as this project's own
    # cases (catalogue.py), under the policy like the corpus.
    test_attack_is_contained(attack, backend, canaries)


def test_catalogue_shape() -> None:
    ids = [a.id for a in CATALOGUE]
    assert len(ids) == len(set(ids)) == 50
    assert not set(ids) & {a.id for a in ATTACKS}, "catalogue ids must not collide with the corpus"
    for attack in CATALOGUE:
        assert attack.expect and "ok" not in attack.expect, attack.id
        assert attack.expect <= {"blocked", "limit", "error"}, attack.id
        assert attack.mode == "source" and attack.policy == "restricted", attack.id
        assert REFS[attack.id], attack.id
        assert "def run(" in attack.code, attack.id


def test_corpus_shape() -> None:
    ids = [a.id for a in ATTACKS]
    assert len(ids) == len(set(ids)), "attack ids must be unique"
    assert len(ATTACKS) >= 60
    for attack in ATTACKS:
        assert attack.expect and "ok" not in attack.expect, attack.id
        assert attack.expect <= {"blocked", "limit", "error"}, attack.id
        assert attack.mode in ("source", "snippet"), attack.id
        assert attack.applies_to in ("restricted", "docker", "both"), attack.id
        assert attack.policy in ("restricted", "plain"), attack.id
        if attack.policy == "plain":
            assert attack.applies_to == "docker", f"{attack.id}: plain Python only runs in a container"
    assert sum(categories().values()) == len(ATTACKS)


def test_canary_check_catches_a_leak(canaries: Canaries) -> None:
    # The check must be able to fail: a result carrying the secret is caught.
    with pytest.raises(AssertionError):
        canaries.check('{"result": "%s"}' % canaries.env_value)
