# Stand-in for the get-pip.py bootstrap script that ansible-test downloads from a host this
# network cannot reach. ansible-test runs it with the new venv's Python and pip-style arguments
# (options plus e.g. "pip==25.2"); we bootstrap pip with ensurepip, then let pip install the
# requested versions from PyPI. Copied to ~/.ansible/test/cache/ by scripts/ansible-test.sh.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
