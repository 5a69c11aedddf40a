#!/usr/bin/env python3
"""Regenerate docs/screenshots/ from the browser tests: each test saves the pages it checks.

Usage: .venv/bin/python scripts/screenshots.py [pytest arguments]
Needs Debian's chromium (apt-get install chromium) and the dev extra (make test installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "screenshots"


def main() -> int:
    if shutil.which("chromium") is None:
        print("chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 2
    for old in TARGET.glob("*.png"):
        old.unlink()
    env = {**os.environ, "DINGBOX_SCREENSHOTS": str(TARGET)}
    tests = ["-m", "browser", "tests/test_ui_browser.py", *sys.argv[1:]]
    command = [sys.executable, "-m", "pytest", "-q", *tests]
    done = subprocess.run(command, cwd=ROOT, env=env)
    print(f"{len(list(TARGET.glob('*.png')))} screenshots in {TARGET.relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
