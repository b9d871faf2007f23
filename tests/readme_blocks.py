#!/usr/bin/env python3
"""Runs the manual's marked command blocks as written, so that it cannot drift from the tool:
every ```sh block right after a `<!-- readme-test: NAME -->` line, in README.md and then in
docs/*.md, runs in bash from the repository's root, stopping at its first failing command; a block that fails fails this
test. `make test` runs it after `cargo test`, when nothing holds cargo's build lock (the
blocks call cargo themselves).

usage: tests/readme_blocks.py [NAME ...]   (default: every marked block)
"""

import pathlib
import re
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARK = re.compile(r"^<!-- readme-test: ([a-z0-9-]+) -->\n```sh\n(.*?)^```$", re.M | re.S)
# What the examples write (gitignored; gtseg_tests::EXAMPLE_OUTPUTS names the same folders of
# the sample store): removed first, so that a block runs as it would on a fresh clone.
EXAMPLE_OUTPUTS = [
    "events/store/gt-example-bucket/output/street-scenes-v2",
    "events/store/gt-example-bucket/output/street-scenes-rebuilt",
    "/tmp/gtseg-train-voc",
    "/tmp/gtseg-train-coco",
    "/tmp/gtseg-train-hf",
]
TIMEOUT_S = 40 * 60


def blocks():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [(m.group(1), m.group(2)) for page in pages for m in MARK.finditer(page.read_text())]


def main(wanted):
    found = blocks()
    if not found:
        sys.exit("readme_blocks: the manual has no <!-- readme-test: NAME --> block")
    names = [n for n, _ in found]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        sys.exit(f"readme_blocks: no block named {unknown}; the manual has {names}")
    for rel in EXAMPLE_OUTPUTS:
        shutil.rmtree(ROOT / rel, ignore_errors=True)
    passed, failed = 0, []
    for name, script in found:
        if wanted and name not in wanted:
            continue
        start = time.monotonic()
        print(f"readme block {name} ...", flush=True)
        try:
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                                 timeout=TIMEOUT_S)
            ok = run.returncode == 0
            why = f"exit status {run.returncode}"
        except subprocess.TimeoutExpired:
            ok, why = False, f"still running after {TIMEOUT_S} s"
        seconds = time.monotonic() - start
        if ok:
            passed += 1
            print(f"readme block {name} ... ok ({seconds:.0f} s)", flush=True)
        else:
            failed.append(name)
            print(f"readme block {name} ... FAILED ({why})", flush=True)
    # The summary in cargo test's words, so that CI counts these with the rest.
    status = "ok" if not failed else "FAILED"
    print(f"test result: {status}. {passed} passed; {len(failed)} failed; README blocks")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
