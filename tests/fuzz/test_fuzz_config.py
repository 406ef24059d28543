"""Fuzzing the rules and pipeline TOML readers (``shadowdiff/config.py``, ``shadowdiff/api.py``
``load_config``, ``shadowdiff/diff/rules.py``, ``[noise]`` and ``[check]``).

Whatever a file holds, reading it gives a config or raises ``ConfigError`` (exit 2, with the
file and the setting named); nothing else escapes. A setting given a value of the wrong type is
refused, not silently converted: ``auto = "no"`` must not mean true.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fuzzkit import FIXTURES, ROOT, fuzz, kept_on_failure, mutated, write
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff import api, check, config
from shadowdiff.cli import main
from shadowdiff.diff import rules as rules_module
from shadowdiff.errors import ConfigError


def _readme_rules() -> bytes:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"```toml\n(.*?)```", readme, re.DOTALL).group(1).encode()  # type: ignore[union-attr]


def _documented_rules() -> bytes:
    block = (rules_module.__doc__ or "").split("::\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).encode()


SEEDS = [
    (ROOT / "pipelines" / "sample.toml").read_bytes(),
    (ROOT / "pipelines" / "nightly.example.toml").read_bytes(),
    _readme_rules(),
    _documented_rules(),
]

# TOML-ish text: the pieces real files are made of, in any order, and deep nesting.
KEYS = st.sampled_from(
    ["primary", "mirror", "input", "source", "log_format", "key", "templates", "auto", "headers"]
    + ["body", "query", "dir", "default_headers", "pattern", "regex", "replace", "ignore"]
    + ["max_decoded_bytes", "max_divergence_rate", "max_latency_ratio", "enabled", "baseline"]
    + ["min_pairs", "alpha", '"$.total"', "'$..x'", "p99", "a.b", '""', "x-y"]
)
SECTIONS = st.sampled_from(
    ["inputs", "pairing", "sides", "endpoints", "redact", "output", "ignore", "tolerance"]
    + ["order", "limits", "check", "report", "noise", "check.max_latency_ratio", "unknown"]
).map(lambda s: f"[{s}]")
VALUES = st.one_of(
    st.sampled_from(['"x"', "'lit'", '"""multi\nline"""', "1", "-1", "0", "1e999", "nan"])
    | st.sampled_from(["inf", "-inf", "true", "false", "1979-05-27T07:32:00Z", "07:32:00"])
    | st.sampled_from(['["a", "b"]', "[1, 2]", "[]", "{}", "{ absolute = 0.01 }", '"\\u0000"'])
    | st.sampled_from(['"$[*]"', '"$..["', '"(?P<"', '"\\\\1"', '"*"', "0.5", "2", "1_000"]),
    st.integers(1, 1500).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 1500).map(lambda n: "{a=" * n + "1" + "}" * n),
)
TOMLISH = st.lists(
    st.one_of(
        SECTIONS,
        st.just("[[normalize]]"),
        st.builds(lambda k, v: f"{k} = {v}", KEYS, VALUES),
        st.sampled_from(["# comment", "", "=", "[", "]]", '"', "\t", "\\"]),
    ),
    max_size=12,
).map("\n".join)


def load_everything(path: Path) -> None:
    """Every reader of a TOML file: as a pipeline, as a rules file, and the sections the later
    stages read (``[check]`` is read only when the check runs)."""
    loaded = config.load(path)
    check.thresholds(loaded.extra.get("check", {}), str(path))
    api.load_config(None, rules=path)


def assert_only_config_errors(path: Path) -> None:
    """The property: a config, or a ``ConfigError`` that names the file or the setting."""
    try:
        load_everything(path)
    except ConfigError as e:
        assert str(path) in str(e) or "[" in str(e), f"the message names nothing: {e}"


def check_file(path: Path, scratch: Path) -> None:
    """The property for a corpus file (read where it is: ``scratch`` is not needed)."""
    assert_only_config_errors(path)


@fuzz(300)
@given(text=TOMLISH)
def test_tomlish_text_gives_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    with kept_on_failure("config-tomlish", text, ".toml"):
        assert_only_config_errors(write(tmp_path, text.encode(), ".toml"))


@fuzz(300)
@given(raw=st.sampled_from(SEEDS).flatmap(lambda s: mutated(s, compress=False)))
def test_mutated_pipeline_and_rules_files_give_a_config_or_a_config_error(
    tmp_path: Path, raw: bytes
) -> None:
    with kept_on_failure("config-mutated", raw, ".toml"):
        assert_only_config_errors(write(tmp_path, raw, ".toml"))


# --- every setting with a value of the wrong type ---------------------------------------------

TOML_VALUES = st.recursive(
    st.one_of(
        st.text(max_size=8),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.datetimes(),
        st.dates(),
        st.times(),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: object) -> float | None:
    """``value`` as ``[check]`` reads numbers: also from text (the flags' form, ``p99=1.5``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _between(value: object, low: float, high: float, *, open_low: bool = False) -> bool:
    number = _as_float(value)
    return number is not None and (low < number if open_low else low <= number) and number <= high


def _is_strings(value: object) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


# What each kind of setting takes; anything else is the wrong type (or out of range).
RIGHT: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "format": lambda v: isinstance(v, str | dict),  # a dict: an envoy-json json_format
    "strings": _is_strings,
    "bool": lambda v: isinstance(v, bool),
    "positive int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "rate": lambda v: _between(v, 0, 1),
    "ratio": lambda v: _between(v, 0, math.inf, open_low=True) and _as_float(v) != math.inf,
    "tolerance": lambda v: _is_number(v) and 0 <= v < math.inf,  # type: ignore[operator]
    "threshold": _is_number,  # the range is the reader's to check
}
# Every setting: where its value goes, and the kind of value it takes.
SETTINGS: list[tuple[tuple[str | int, ...], str]] = [
    (("inputs", "primary"), "strings"),
    (("inputs", "mirror"), "strings"),
    (("inputs", "secondary"), "strings"),
    (("inputs", "input"), "strings"),
    (("inputs", "source"), "string"),
    (("inputs", "log_format"), "format"),
    (("pairing", "key"), "string"),
    (("sides", "primary"), "string"),
    (("endpoints", "templates"), "strings"),
    (("endpoints", "auto"), "bool"),
    (("redact", "headers"), "strings"),
    (("redact", "body"), "strings"),
    (("redact", "query"), "strings"),
    (("output", "dir"), "string"),
    (("ignore", "headers"), "strings"),
    (("ignore", "body"), "strings"),
    (("ignore", "default_headers"), "bool"),
    (("normalize", 0, "pattern"), "string"),
    (("normalize", 0, "regex"), "string"),
    (("normalize", 0, "replace"), "string"),
    (("tolerance", "$.total", "absolute"), "tolerance"),
    (("tolerance", "$.total", "relative"), "tolerance"),
    (("order", "ignore"), "strings"),
    (("limits", "max_decoded_bytes"), "positive int"),
    (("limits", "max_diffs_per_pair"), "positive int"),
    (("check", "max_divergence_rate"), "rate"),
    (("check", "max_orphan_rate"), "rate"),
    (("check", "max_reject_rate"), "rate"),
    (("check", "max_latency_ratio", "p99"), "ratio"),
    (("check", "max_divergence_rate_per_endpoint", "*"), "rate"),
    (("report", "enabled"), "bool"),
    (("report", "baseline"), "string"),
    (("noise", "alpha"), "threshold"),
    (("noise", "min_pairs"), "threshold"),
]
# Inside [[normalize]], the other required keys, so that only the fuzzed one can be wrong.
NORMALIZE = {"pattern": "$.a", "regex": "x", "replace": ""}


def document(where: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A parsed TOML document with ``value`` at ``where``."""
    if where[0] == "normalize":
        return {"normalize": [{**NORMALIZE, str(where[2]): value}]}
    data: dict[str, Any] = {}
    node = data
    for part in where[:-1]:
        node = node.setdefault(str(part), {})
    node[str(where[-1])] = value
    return data


def validate(data: Mapping[str, Any]) -> None:
    """Everything that reads these settings before a run's end: the config and the ``[check]``
    thresholds (``[report]``'s types are checked there too)."""
    loaded = config.from_mapping(data, origin="fuzz.toml")
    check.thresholds(loaded.extra.get("check", {}), "fuzz.toml")


def _param(where: tuple[str | int, ...], kind: str) -> Any:
    return pytest.param(where, kind, id=".".join(map(str, where)))


@pytest.mark.parametrize(("where", "kind"), [_param(*s) for s in SETTINGS])
@fuzz(25)
@given(value=TOML_VALUES)
def test_a_setting_of_the_wrong_type_is_refused(
    where: tuple[str | int, ...], kind: str, value: Any
) -> None:
    data = document(where, value)
    try:
        validate(data)
    except ConfigError:
        return
    assert RIGHT[kind](value), f"{'.'.join(map(str, where))} = {value!r} accepted"


def test_noise_thresholds_out_of_range_are_refused() -> None:
    for name, value in [("alpha", 0), ("alpha", 1), ("min_pairs", 0.5), ("alpha", math.nan)]:
        with pytest.raises(ConfigError, match=f"\\[noise\\] {name}"):
            validate({"noise": {name: value}})


# --- the regressions fuzzing found ------------------------------------------------------------


@pytest.mark.parametrize(
    "nested", ["a = " + "[" * 1000 + "]" * 1000, "a = " + "{b=" * 1000 + "1" + "}" * 1000]
)
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, nested: str) -> None:
    path = write(tmp_path, nested.encode(), ".toml")
    with pytest.raises(ConfigError):
        config.load(path)
    with pytest.raises(ConfigError):
        api.load_config(path)


@pytest.mark.parametrize("value", ["5", "true", '["%START_TIME%"]', '{ a = "%START_TIME%" }'])
def test_a_log_format_that_is_not_a_string_ends_the_run_with_exit_2(
    tmp_path: Path, value: str
) -> None:
    log = FIXTURES / "envoy_text" / "istio_default.log"
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        f'[inputs]\nprimary = ["{log}"]\nmirror = ["{log}"]\nlog_format = {value}\n'
        "[report]\nenabled = false\n"
    )
    result = CliRunner().invoke(main, ["run", str(pipeline), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
