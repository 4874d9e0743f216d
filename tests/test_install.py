"""Installs are reproducible: requirements.lock pins every dependency of pyproject.toml exactly,
with hashes, and this environment was installed from it (`make lock` refreshes it on purpose)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK_TEXT = (ROOT / "requirements.lock").read_text()
LOCKED = {canonicalize_name(name): Version(pinned)
          for name, pinned in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", LOCK_TEXT, re.M)}
DIRECT = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]]


def test_the_lock_pins_every_package_with_hashes():
    entries = re.findall(r"^[A-Za-z0-9][^\n]*==[^\n]*(?:\n {4}--hash=sha256:[0-9a-f]{64}[^\n]*)+", LOCK_TEXT, re.M)
    assert len(entries) == len(LOCKED) > 50


@pytest.mark.parametrize("requirement", DIRECT, ids=str)
def test_every_dependency_of_pyproject_is_locked_at_a_version_it_allows(requirement):
    name = canonicalize_name(requirement.name)
    assert name in LOCKED, f"{requirement.name} is in pyproject.toml but not in requirements.lock: run make lock"
    assert requirement.specifier.contains(LOCKED[name], prereleases=True), (
        f"requirements.lock pins {name}=={LOCKED[name]}, which pyproject.toml's {requirement} refuses: run make lock")


@pytest.mark.parametrize("name", sorted(LOCKED))
def test_this_environment_holds_the_locked_version(name):
    try:
        installed = Version(version(name))
    except PackageNotFoundError:
        pytest.fail(f"{name} is locked but not installed: make install installs from requirements.lock")
    assert installed == LOCKED[name]


BENCH = {canonicalize_name(name): Version(pinned) for name, pinned in re.findall(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", (ROOT / "requirements-bench.lock").read_text(), re.M)}


def test_the_bench_lock_adds_txtai_and_changes_no_pin_of_the_main_lock():
    assert {name: BENCH.get(name) for name in LOCKED} == LOCKED
    for requirement in map(Requirement, PROJECT["optional-dependencies"]["bench"]):
        assert requirement.specifier.contains(BENCH[canonicalize_name(requirement.name)], prereleases=True)


def test_the_lock_holds_no_direct_dependency_that_pyproject_dropped():
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT)
    direct_in_lock = {canonicalize_name(e.split("==")[0]) for e in entries if "kb (pyproject.toml)" in e}
    assert direct_in_lock == {canonicalize_name(r.name) for r in DIRECT}, "run make lock"
