"""Run the covert-channel scenarios (`channels.py`) as whoever runs this
script (`test_channels.py` runs it as an ordinary user) and print one JSON
report on stdout: scenario name -> its report, or its traceback.

    python channel_driver.py CONFIG_JSON

CONFIG_JSON: ``{"site_dirs": [...], "python": "..."}`` as for
`jail_driver.py`. The outside process of the outside scenarios is this
script: the same uid as the calls, so nothing but the jail separates them.
"""

from __future__ import annotations

import json
import os
import site
import sys
import traceback
from typing import Any


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    for directory in config["site_dirs"]:
        site.addsitedir(directory)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import channels  # loaded by path: this script runs outside the test package
    import jailkit

    report: dict[str, Any] = {"uid": os.getuid(), "scenarios": {}}
    backend = jailkit.make_backend(spares=2, python=config["python"])
    try:
        report["info"] = backend.info()
        for name, scenario in channels.SCENARIOS.items():
            try:
                report["scenarios"][name] = {"report": scenario(backend)}
            except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
                report["scenarios"][name] = {"crash": traceback.format_exc()}
    finally:
        backend.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
