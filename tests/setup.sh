#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: Debian's chromium, which the
# gallery's browser test (tests/test_gallery.py) drives headless, and chromium-driver, through
# which Selenium drives it in the review studio's tests (tests/test_studio.py). Part of the README's test command
# and of .ci/run, so a fresh machine gets it the same way a developer's does.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian/Ubuntu: the browser test skips (and fails under CI=true) with a pointer here.
    echo "tests/setup.sh: no apt-get here; install chromium and chromedriver yourself for the browser tests" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "tests/setup.sh: chromium or chromium-driver is missing and installing them needs root (or sudo)" >&2
    exit 0
fi
echo "tests/setup.sh: installing chromium and chromium-driver (Debian packages) for the browser tests" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
