from __future__ import annotations

from pathlib import Path

import pytest

from shadowdiff import api
from shadowdiff.config import DEFAULT_REDACT_HEADERS, load
from shadowdiff.errors import ConfigError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pipeline_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.toml",
        """
[inputs]
primary = ["logs/v1"]
mirror = "logs/v2"
[pairing]
key = "X-Correlation-Id"
[sides]
secondary = "upstream_cluster = 'app_v1b'"
[endpoints]
templates = ["GET /users/{id}"]
[redact]
headers = ["X-Session"]
[output]
dir = "out/nightly"
[check]
max_divergence_rate = 0.01
""",
    )
    config = load(path)
    assert config.primary == (str(tmp_path / "logs/v1"),)
    assert config.mirror == (str(tmp_path / "logs/v2"),)
    assert config.pairing_key == "x-correlation-id"
    assert config.sides.secondary == "upstream_cluster = 'app_v1b'"
    assert config.endpoint_templates == ("GET /users/{id}",)
    assert config.redact_headers == (*DEFAULT_REDACT_HEADERS, "x-session")
    assert config.out == str(tmp_path / "out/nightly")
    assert config.extra == {"check": {"max_divergence_rate": 0.01}}


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", "[side]\nprimary = 'true'\n")
    with pytest.raises(ConfigError, match=r"unknown section \[side\]. Did you mean 'sides'"):
        load(path)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", "[pairing]\nheader = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'header' in \[pairing\]"):
        load(path)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", "[inputs\n")
    with pytest.raises(ConfigError, match="p.toml"):
        load(path)


def test_rules_file_cannot_hold_inputs(tmp_path: Path) -> None:
    rules = write(tmp_path, "r.toml", "[inputs]\nprimary = 'x'\n")
    with pytest.raises(ConfigError, match="rules file holds rules only"):
        api.load_config(None, rules)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", "[inputs]\nsource = 'envoy-text'\n")
    config = api.load_config(path).with_overrides(source="envoy-json", primary=())
    assert config.source == "envoy-json"
