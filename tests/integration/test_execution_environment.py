"""The execution environment definition: ansible-builder turns it into a build context that carries the
collection's Galaxy, Python and system requirements, and the Python requirements cover what the plugins
import. (``ansible-builder build`` needs a container engine; ``create`` does not, so that is what runs here.)"""

import ast
import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLUGINS = os.path.join(ROOT, "plugins")

# Import name -> PyPI distribution, for every third-party module the plugins may import.
DISTRIBUTIONS = {"boto3": "boto3", "botocore": "botocore"}
# Imported through amazon.aws's module_utils rather than by our own code: AnsibleAWSModule.client()
# builds boto3 sessions, so a plugin that uses it needs boto3 on the controller.
AMAZON_AWS_MODULE_UTILS = "ansible_collections.amazon.aws.plugins.module_utils"
# jinja2 and markupsafe (the report's HTML template) come with ansible-core, which requires them.
NOT_THIRD_PARTY = {"__future__", "ansible", "ansible_collections", "jinja2", "markupsafe"}

pytestmark = pytest.mark.latest_only  # ansible-builder does not depend on the ansible-core version


def requirement_names(path):
    """Distribution names (lower case) in a pip requirements file; comments and blank lines skipped."""
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(re.match(r"[A-Za-z0-9._-]+", line).group(0).lower())
    return names


def bindep_packages(path):
    with open(path) as f:
        return [ln.split()[0] for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def plugin_imports():
    """{top-level module: [files]} for every absolute import under plugins/, at any depth (also the ones
    inside ``try:`` or a function), plus the amazon.aws module_utils they pull in."""
    found = {}
    for d, _dirs, files in os.walk(PLUGINS):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(d, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    rel = os.path.relpath(path, ROOT)
                    found.setdefault(module.split(".")[0], set()).add(rel)
                    if module.startswith(AMAZON_AWS_MODULE_UTILS):
                        found.setdefault(AMAZON_AWS_MODULE_UTILS, set()).add(rel)
    return found


def test_requirements_txt_covers_every_third_party_import_of_the_plugins():
    imports = plugin_imports()
    third_party = {m: f for m, f in imports.items() if m not in sys.stdlib_module_names and m not in NOT_THIRD_PARTY}
    third_party.pop(AMAZON_AWS_MODULE_UTILS, None)
    unmapped = {m: sorted(f) for m, f in third_party.items() if m not in DISTRIBUTIONS}
    assert not unmapped, "plugins import modules with no known distribution (add them to DISTRIBUTIONS): %s" % unmapped

    needed = {DISTRIBUTIONS[m] for m in third_party}
    if AMAZON_AWS_MODULE_UTILS in imports:
        needed.add("boto3")
    listed = requirement_names(os.path.join(ROOT, "requirements.txt"))
    assert len(listed) == len(set(listed)), listed
    assert needed <= set(listed), "requirements.txt lacks %s" % sorted(needed - set(listed))
    # Nothing stale either: every requirement is justified by an import.
    assert set(listed) <= needed, "requirements.txt lists packages no plugin needs: %s" % sorted(set(listed) - needed)
    # The scan itself found the AWS modules (so an empty result cannot pass silently).
    assert "botocore" in third_party and any("/_aws/" in f or "elbv2_target" in f for f in third_party["botocore"]), (
        third_party
    )


@pytest.fixture(scope="module")
def build_context(tmp_path_factory):
    context = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        [
            os.path.join(BIN, "ansible-builder"),
            "create",
            "-f",
            "execution-environment.yml",
            "-c",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


@pytest.mark.integration
def test_builder_context_carries_the_galaxy_python_and_system_requirements(build_context):
    build = build_context / "_build"
    with open(build / "requirements.yml") as f:
        galaxy = yaml.safe_load(f)
    assert [c["name"] for c in galaxy["collections"]] == ["amazon.aws"], galaxy

    python = requirement_names(build / "requirements.txt")
    assert {"boto3", "botocore"} <= set(python), python

    system = bindep_packages(build / "bindep.txt")
    assert {"hostname", "openssh-clients"} <= set(system), system
    # The load balancers' tools are not the controller's: they must not be baked into the EE.
    assert not {"haproxy", "socat"} & set(system), system

    containerfile = (build_context / "Containerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==2.21.5 ansible-runner==2.4.3"' in containerfile
    # ansible-core 2.21 needs Python >= 3.12 on the controller.
    assert 'PYCMD="/usr/bin/python3.12"' in containerfile
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    for script in ("assemble", "install-from-bindep", "introspect.py"):
        assert (build / "scripts" / script).is_file(), script


@pytest.mark.integration
def test_installed_collection_exposes_its_requirements_to_builder_introspection(tmp_path):
    """Someone who lists zerodowntime.rollout in their own EE's requirements.yml gets boto3/botocore and
    the system packages through ansible-builder's introspection of the INSTALLED collection, so
    requirements.txt and bindep.txt must survive galaxy.yml's build_ignore."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1")
    galaxy = os.path.join(BIN, "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", "--force", "--output-path", str(tmp_path / "dist")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    (tarball,) = (tmp_path / "dist").glob("zerodowntime-rollout-*.tar.gz")
    collections = tmp_path / "collections"
    subprocess.run(
        [galaxy, "collection", "install", "--offline", "--no-deps", "-p", str(collections), str(tarball)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    installed = collections / "ansible_collections" / "zerodowntime" / "rollout"
    for name in ("requirements.txt", "bindep.txt"):
        assert (installed / name).is_file(), "%s is not in the built collection" % name

    proc = subprocess.run(
        [os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(collections)],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = yaml.safe_load(proc.stdout.split("\n", 1)[1])  # first line: "# Dependency data for ..."
    ours = "# from collection zerodowntime.rollout"
    python = sorted(re.match(r"[A-Za-z0-9._-]+", e).group(0) for e in data["python"] if e.endswith(ours))
    system = sorted(e.split()[0] for e in data["system"] if e.endswith(ours))
    assert python == ["boto3", "botocore"], data
    assert {"hostname", "openssh-clients"} <= set(system), data
