#!/usr/bin/env bash
# ansible-test makes a virtual environment per sanity test and bootstraps pip into each with a script it
# downloads from ci-files.testing.ansible.com, which this machine cannot reach (only PyPI). Put our
# stand-in (get_pip.py: pip 24.2 from its PyPI wheel) where ansible-test looks for its cached copy.
# ansible-test keeps the environments it made (~/.ansible/test/venv): PyPI is needed on the first run only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=~/.ansible/test/cache
mkdir -p "$cache"
if [ ! -f "$cache/pip-24.2-py3-none-any.whl" ]; then
  "$here/../../.venv/bin/pip" download -q --no-deps -d "$cache" "pip==24.2"
fi
cmp -s "$here/get_pip.py" "$cache/get_pip_24_2.py" || cp "$here/get_pip.py" "$cache/get_pip_24_2.py"
