"""Stand-in for ansible-test's pip bootstrap script (get-pip-24.2.py from ci-files.testing.ansible.com,
which this machine cannot reach): like get-pip.py, it runs pip from a copy outside the new virtual
environment (here the pip 24.2 wheel from PyPI, beside this file) to install pip and the packages asked
for into it. tests/ansible_test/prepare.sh puts both where ansible-test looks."""

import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-24.2-py3-none-any.whl")


def main() -> int:
    args = sys.argv[1:]
    packages = [a for a in args if not a.startswith("-")]
    options = [a for a in args if a.startswith("-") and a not in ("--no-setuptools", "--no-wheel")]
    extra = [] if "--no-setuptools" in args or any(p.startswith("setuptools") for p in packages) else ["setuptools"]
    extra += [] if "--no-wheel" in args or any(p.startswith("wheel") for p in packages) else ["wheel"]
    if not any(p.startswith("pip") for p in packages):
        extra.append("pip")
    sys.path.insert(0, WHEEL)  # a wheel is a zip Python imports from, as get-pip.py's embedded copy
    from pip._internal.cli.main import main as pip_main

    return pip_main(["install", "--upgrade", "--force-reinstall", *options, *packages, *extra])


if __name__ == "__main__":
    sys.exit(main())
