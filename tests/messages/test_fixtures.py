"""Where the suite finds the shared recordings (``../shared/fixtures`` or an override)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.conftest
from tests.conftest import DEFAULT_FIXTURES, FIXTURES_ENV_VAR

REPO = Path(__file__).resolve().parents[2]


def _fixtures_seen_with(**overrides: str) -> Path:
    """``tests.conftest.FIXTURES`` as a fresh interpreter computes it under ``overrides``."""
    env = {
        k: v for k, v in os.environ.items() if k not in (FIXTURES_ENV_VAR, "VOLSPIKE_SIM_FIXTURES")
    }
    result = subprocess.run(
        [sys.executable, "-c", "import tests.conftest as c; print(c.FIXTURES)"],
        cwd=REPO,
        env=env | overrides,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return Path(result.stdout.strip())


def test_the_fixtures_directory_can_be_moved_with_an_environment_variable(tmp_path):
    assert _fixtures_seen_with() == DEFAULT_FIXTURES
    assert _fixtures_seen_with(**{FIXTURES_ENV_VAR: str(tmp_path)}) == tmp_path
    assert _fixtures_seen_with(**{FIXTURES_ENV_VAR: ""}) == DEFAULT_FIXTURES
    # the simulator's older variable is honoured too, after ours
    assert _fixtures_seen_with(VOLSPIKE_SIM_FIXTURES=str(tmp_path)) == tmp_path
    both = {FIXTURES_ENV_VAR: str(tmp_path / "a"), "VOLSPIKE_SIM_FIXTURES": str(tmp_path / "b")}
    assert _fixtures_seen_with(**both) == tmp_path / "a"


def test_a_test_that_needs_missing_fixtures_fails_and_says_how_to_fix_it(
    request, monkeypatch, tmp_path
):
    monkeypatch.setattr(tests.conftest, "FIXTURES", tmp_path / "nowhere")
    with pytest.raises(pytest.fail.Exception) as info:
        request.getfixturevalue("fixtures_dir")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert FIXTURES_ENV_VAR in str(info.value)
