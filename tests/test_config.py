from __future__ import annotations

from pathlib import Path

import pytest

from shadowdiff import api
from shadowdiff.config import load
from shadowdiff.errors import ConfigError
from shadowdiff.settings import DEFAULT_REDACT_HEADERS


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


def test_noise_section_sets_the_thresholds(tmp_path: Path) -> None:
    config = load(write(tmp_path, "p.toml", "[noise]\nmin_pairs = 50\nalpha = 0.05\n"))
    assert config.noise.min_pairs == 50 and isinstance(config.noise.min_pairs, int)
    assert config.noise.alpha == 0.05
    assert config.noise.relative == 0.20  # the others keep their defaults
    assert config.as_dict()["noise"]["min_pairs"] == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_pair = 5", r"unknown setting 'min_pair' in \[noise\]. Did you mean 'min_pairs'"),
        ("alpha = 1.5", r"\[noise\] alpha = 1.5: must be a number between 0 and 1"),
        ("min_pairs = 2.5", r"\[noise\] min_pairs = 2.5: must be a whole number of at least 1"),
        (
            "relative = 'high'",
            r"\[noise\] relative = 'high': must be a number above 0 and at most 1",
        ),
        ("clock_tolerance_s = -1", r"\[noise\] clock_tolerance_s = -1: must be a number above 0"),
    ],
)
def test_a_bad_noise_setting_is_named_with_what_it_may_be(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "p.toml", f"[noise]\n{text}\n")
    with pytest.raises(ConfigError, match=f"p.toml: {message}"):
        load(path)


def test_noise_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[noise\] must be a table"):
        load(write(tmp_path, "p.toml", "noise = 3\n"))
