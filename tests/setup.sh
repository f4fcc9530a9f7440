#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages: Debian's chromium, which the
# gallery's browser test (tests/test_gallery.py) drives headless, chromium-driver, through which
# Selenium drives it in the review studio's tests (tests/test_studio.py), and exiftool
# (libimage-exiftool-perl), the independent reader of the XMP that `imgbuild export` embeds
# (tests/ecosystem/test_export.py). Part of the README's test command and of .ci/run, so a fresh
# machine gets them the same way a developer's does.
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
command -v exiftool >/dev/null 2>&1 || packages+=(libimage-exiftool-perl)
if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian/Ubuntu: the browser tests skip (and fail under CI=true) with a pointer here.
    echo "tests/setup.sh: no apt-get here; install ${packages[*]} yourself (see the top of this file)" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "tests/setup.sh: ${packages[*]} missing and installing needs root (or sudo)" >&2
    exit 0
fi
echo "tests/setup.sh: installing ${packages[*]} (Debian packages) for the tests" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
