from __future__ import annotations

from pathlib import Path

import pytest

from messages.errors import ConfigError
from supervisors.config import SETTINGS, Config, load_config, render_config, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_are_the_originals_where_it_had_them():
    config = load_config(environ={})
    assert config == Config()
    assert (config.funding_api_host, config.funding_api_port) == ("127.0.0.1", 8888)
    assert config.stale_after_s == 180
    assert config.binance_ws_url == "wss://fstream.binance.com/market"
    assert (config.oi_liquid_enter_quote_24h, config.oi_liquid_exit_quote_24h) == (4e6, 2e6)
    assert (config.volume_multiple, config.min_quote_vol) == (3, 3e6)
    assert config.oi_universe_exclude == ("USDCUSDT",)
    assert not config.has_prod_backend
    assert not config.has_telegram


def test_cli_beats_environment_which_beats_toml(tmp_path):
    toml = tmp_path / "volspike.toml"
    toml.write_text('funding_api_port = 7000\nstale_after_s = 30\nlog_level = "debug"\n')
    config = load_config(
        toml_path=toml,
        environ={"FUNDING_API_PORT": "7001", "VOLSPIKE_STALE_AFTER_S": "60"},
        overrides={"funding_api_port": "7002"},
    )
    assert config.funding_api_port == 7002
    assert config.stale_after_s == 60
    assert config.log_level == "DEBUG"
    assert config.sources == {
        "funding_api_port": "cli",
        "stale_after_s": "env",
        "log_level": "toml",
    }


def test_the_originals_environment_names_are_read():
    config = load_config(
        environ={
            "VOLSPIKE_API_URL": "https://api.example.test/",
            "VOLSPIKE_API_KEY": "prod-key-123",
            "TELEGRAM_TOKEN": "123:abc-token",
            "CHAT_ID": "-100",
            "OI_SPIKE_THRESHOLD_PCT_5MIN": "0.04",
            "OI_UNIVERSE_EXCLUDE": "usdcusdt, fdusdusdt",
        }
    )
    assert config.volspike_api_url == "https://api.example.test"
    assert config.has_prod_backend and config.has_telegram
    assert config.oi_spike_threshold_pct_5min == 0.04
    assert config.oi_universe_exclude == ("USDCUSDT", "FDUSDUSDT")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FUNDING_API_PORT": "eighty"}, "FUNDING_API_PORT: 'eighty' is not an integer"),
        ({"FUNDING_API_PORT": "70000"}, "FUNDING_API_PORT: '70000' is above the maximum 65535"),
        ({"VOLSPIKE_STALE_AFTER_S": "nan"}, "VOLSPIKE_STALE_AFTER_S: 'nan' is not a finite number"),
        ({"VOLSPIKE_STALE_AFTER_S": "0"}, "below the minimum"),
        ({"BINANCE_WS_URL": "https://x"}, "BINANCE_WS_URL: 'https://x' is not a ws/wss URL"),
        ({"VOLSPIKE_API_URL": "localhost:3001"}, "is not a http/https URL"),
        ({"VOLSPIKE_LOG_JSON": "maybe"}, "is not a boolean"),
        ({"VOLSPIKE_LOG_LEVEL": "LOUD"}, "is not a log level"),
        (
            {"VOLSPIKE_API_URL": "http://x"},
            "VOLSPIKE_API_KEY: must be set together with VOLSPIKE_API_URL",
        ),
        ({"TELEGRAM_TOKEN": "123:abc"}, "CHAT_ID: must be set together with TELEGRAM_TOKEN"),
        ({"VOLSPIKE_API_URL_DEV": "http://d", "VOLSPIKE_API_KEY_DEV": "k"}, "needs a PROD backend"),
        ({"OI_MIN_INTERVAL_SEC": "30"}, "OI_MIN_INTERVAL_SEC: is greater than OI_MAX_INTERVAL_SEC"),
        ({"VOLSPIKE_STAET_DIR": "/tmp"}, "VOLSPIKE_STAET_DIR: unknown setting (a typo?)"),
    ],
)
def test_a_wrong_value_fails_with_one_line_naming_the_setting(environ, message):
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_an_unknown_toml_key_or_invalid_toml_is_an_error(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("funding_api_prot = 1\n")
    with pytest.raises(ConfigError, match="funding_api_prot: unknown setting"):
        load_config(toml_path=toml, environ={})
    toml.write_text("funding_api_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(toml_path=toml, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(toml_path=tmp_path / "missing.toml", environ={})
    toml.write_text('funding_api_port = "8"\n')
    with pytest.raises(ConfigError, match="funding_api_port: expected a TOML int, got '8'"):
        load_config(toml_path=toml, environ={})
    toml.write_text('log_json = "yes"\n')
    with pytest.raises(ConfigError, match="log_json: expected a TOML bool"):
        load_config(toml_path=toml, environ={})
    toml.write_text("stale_after_s = true\n")
    with pytest.raises(ConfigError, match="stale_after_s: expected a TOML int or float"):
        load_config(toml_path=toml, environ={})
    toml.write_text('oi_universe_exclude = ["usdcusdt"]\nstale_after_s = 90\n')
    config = load_config(toml_path=toml, environ={})
    assert config.oi_universe_exclude == ("USDCUSDT",)
    assert config.stale_after_s == 90


def test_an_unknown_cli_override_is_an_error():
    with pytest.raises(ConfigError, match="--set nope: unknown setting"):
        load_config(environ={}, overrides={"nope": "1"})


def test_legacy_variables_warn_instead_of_failing():
    warnings: list[str] = []
    load_config(environ={"OI_LOOKBACK_WINDOW_SEC": "300", "PATH": "/bin"}, warn=warnings.append)
    assert warnings == [
        "OI_LOOKBACK_WINDOW_SEC is set but no longer read (see the configuration table)"
    ]


def test_an_empty_optional_variable_means_unset():
    assert load_config(environ={"VOLSPIKE_API_URL": "", "OI_MIN_DELTA_USD": ""}) == Config()


def test_printed_configuration_redacts_every_secret_and_names_sources():
    config = load_config(
        environ={
            "VOLSPIKE_API_URL": "http://b",
            "VOLSPIKE_API_KEY": "prod-secret-1",
            "TELEGRAM_TOKEN": "99:tg-secret-2",
            "CHAT_ID": "5",
        }
    )
    text = render_config(config)
    assert "prod-secret-1" not in text
    assert "tg-secret-2" not in text
    assert "volspike_api_key             = *** (set)  # env" in text
    assert "funding_api_port             = 8888  # default" in text
    assert set(config.secrets) == {"prod-secret-1", "99:tg-secret-2"}


def test_replace_validates_the_result():
    with pytest.raises(ConfigError):
        Config().replace(volspike_api_url="http://x")
    assert Config().replace(funding_api_port=0).funding_api_port == 0


def test_every_setting_has_a_unique_environment_name():
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs))


def test_the_readme_configuration_table_matches_the_settings():
    assert settings_table() in README.read_text(encoding="utf-8")
