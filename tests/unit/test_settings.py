"""Settings: defaults, TOML, environment and flags, in that order of precedence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packyard.errors import ConfigurationError
from packyard.settings import DEFAULT_UPSTREAM, load_settings

README = Path(__file__).parents[2] / "README.md"


def test_no_configuration_at_all_gives_the_embedded_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert [u.url for u in settings.upstreams] == [DEFAULT_UPSTREAM]
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("packyard-data/packyard.db")


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "packyard.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nworkers = 3\n')
    environ = {"PACKYARD_PORT": "9002", "PACKYARD_WORKERS": "2"}
    settings = load_settings(config, {"port": 9003, "host": None}, environ=environ)
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9003, 2)


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "packyard.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    settings = load_settings(environ={"PACKYARD_CONFIG": str(config)})
    assert settings.data_dir == tmp_path


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (["none"], []),
        (["NONE"], []),
        (
            ["http://a.example/simple", "http://b.example/simple/"],
            ["http://a.example/simple/", "http://b.example/simple/"],
        ),
    ],
)
def test_upstream_flags_in_priority_order(urls: list[str], expected: list[str]) -> None:
    settings = load_settings(overrides={"upstreams": urls}, environ={})
    assert [u.url for u in settings.upstreams] == expected


def test_upstreams_from_the_environment_are_space_separated() -> None:
    environ = {"PACKYARD_UPSTREAM": "http://a.example/simple/ http://b.example/simple/"}
    assert len(load_settings(environ=environ).upstreams) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = 'eighty'", "port"),
        ("port = 70000", "port"),
        ("unknown_setting = 1", "unknown_setting"),
        ("[[upstreams]]\nurl = 'ftp://mirror.example/'", "http://"),
        ("port = ", "not valid TOML"),
    ],
)
def test_bad_configuration_is_named_in_the_message(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "packyard.toml"
    config.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(config, environ={})


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_the_readme_example_is_a_valid_configuration(tmp_path: Path) -> None:
    match = re.search(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
    assert match is not None
    config = tmp_path / "packyard.toml"
    config.write_text(match.group(1))
    settings = load_settings(config, environ={})
    assert settings.upstreams[0].page_ttl == 600
    assert settings.components == ("acme_policy:make_component",)


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://user:secret@mirror.example:8443/simple/", "https://mirror.example:8443/simple/"),
        ("https://token@mirror.example/simple/", "https://mirror.example/simple/"),
        ("http://127.0.0.1:9000/simple/", "http://127.0.0.1:9000/simple/"),
    ],
)
def test_an_upstream_label_never_shows_credentials(url: str, label: str) -> None:
    settings = load_settings(overrides={"upstreams": [url]}, environ={})
    assert settings.upstreams[0].label == label
