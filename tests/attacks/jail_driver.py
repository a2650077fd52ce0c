"""Run the jail probes as whoever runs this script (`test_jail_user.py` runs
it as an ordinary user) and print one JSON report on stdout.

    python jail_driver.py CONFIG_JSON

CONFIG_JSON: ``{"site_dirs": [...], "python": "...", "probes": [ids],
"persistence": [ids], "attacks": [{"id", "code", "mode"}], "helper_tool": "..."}``. ``site_dirs`` are added with `site.addsitedir`
(where toolcrib is installed), ``python`` is the zygote's interpreter.

The canaries are made here, by this user: the secret, the watched directory
and the drop box belong to the same uid the calls run as, so plain file
permissions allow everything and only the jail can refuse. Every process of
this uid other than this script, the zygote and its spares counts as one
that outlived its call.
"""

from __future__ import annotations

import json
import os
import secrets
import site
import sys
import traceback
from typing import Any


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    for directory in config["site_dirs"]:
        site.addsitedir(directory)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import jailkit  # loaded by path: this script runs outside the test package
    import probes
    from toolcrib.sandbox import Job, Limits

    report: dict[str, Any] = {"uid": os.getuid(), "gid": os.getgid(), "probes": {}, "persistence": {}, "attacks": {}}
    canaries = jailkit.JailCanaries.create("TOOLCRIB_JAIL_USER_CANARY", jail_uid=os.getuid())
    session = jailkit.JailSession(
        canaries,
        jailkit.make_backend(spares=2, python=config["python"]),
        2,
        owner_uid=os.getuid(),
        exempt={os.getpid()},
    )
    limits = Limits(cpu=2, wall=5, memory=256, output=64)

    def job(body: str) -> Any:
        return Job(source=canaries.render(probes.source(body)), entrypoint="run", policy="plain", limits=limits)

    try:
        report["start_problems"] = session.start()
        report["info"] = session.backend.info()
        result, problems = session.call(
            Job(
                source="def run():\n    return [run.__name__, (1).__class__.__name__]\n",
                entrypoint="run",
                policy="plain",
                limits=limits,
            )
        )
        report["sanity"] = {"reply": result.to_json(), "problems": problems}
        wanted = set(config["probes"])
        for probe in probes.PROBES:
            if probe.id not in wanted:
                continue
            result, problems = session.call(job(probe.code))
            reply = result.to_json()
            report["probes"][probe.id] = {"verdict": probes.judge(probe, reply), "problems": problems, "reply": reply}
        for attack in config.get("attacks", []):
            code = canaries.render(attack["code"])
            if attack["mode"] == "snippet":
                attack_job = Job(
                    source=config["helper_tool"],
                    entrypoint="apply",
                    mode="snippet",
                    snippet=code,
                    limits=limits,
                    policy="plain",
                )
            else:
                attack_job = Job(source=code, entrypoint="run", limits=limits, policy="plain")
            result, problems = session.call(attack_job)
            report["attacks"][attack["id"]] = {"reply": result.to_json(), "problems": problems}
        for pair in probes.PERSISTENCE:
            if pair.id not in config["persistence"]:
                continue
            mark = "mark-" + secrets.token_hex(12)
            wrote, problems = session.call(job(pair.write.replace("@MARK@", mark)))
            entry: dict[str, Any] = {
                "write": wrote.to_json(),
                "problems": list(problems),
                "seen": False,
                "write_refused": pair.write_refused,
                "reads_ok": True,
            }
            for _ in range(2):
                read, problems = session.call(job(pair.read.replace("@MARK@", mark)))
                entry["problems"] += problems
                entry["read"] = read.to_json()
                entry["seen"] = entry["seen"] or mark in json.dumps(read.to_json(), ensure_ascii=False)
                entry["reads_ok"] = entry["reads_ok"] and read.status == "ok"
            report["persistence"][pair.id] = entry
    except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
        report["crash"] = traceback.format_exc()
    finally:
        session.backend.close()
        report["final_problems"] = canaries.problems()
        canaries.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
