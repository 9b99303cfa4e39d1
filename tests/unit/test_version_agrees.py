# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The version in galaxy.yml is the one README.md and docs/awx.md speak of (issue 14: they had drifted apart)."""

import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def galaxy_version():
    return yaml.safe_load(read("galaxy.yml"))["version"]


def test_readme_states_the_galaxy_version():
    assert "Status: **%s," % galaxy_version() in read("README.md")


def test_awx_guide_pins_a_range_that_admits_the_galaxy_version():
    major, minor, _patch = (int(x) for x in galaxy_version().split("."))
    awx = read("docs", "awx.md")
    pins = re.findall(r'version: ">=(\d+)\.(\d+)\.(\d+),<(\d+)\.(\d+)\.(\d+)"', awx)
    assert pins, "docs/awx.md pins no version range"
    for low_major, low_minor, _low_patch, high_major, high_minor, _high_patch in pins:
        assert (int(low_major), int(low_minor)) <= (major, minor) < (int(high_major), int(high_minor)), pins
    for tag in re.findall(r"rollout-ee:(\d+\.\d+\.\d+)|version: v(\d+\.\d+\.\d+)", awx):
        assert galaxy_version() in tag, tag
