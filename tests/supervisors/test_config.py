from __future__ import annotations

from pathlib import Path

import pytest

from messages.errors import ConfigError
from supervisors.config import (
    LEGACY_ENV,
    SETTINGS,
    Config,
    load_config,
    render_config,
    settings_table,
    strip_userinfo,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_are_the_originals_where_it_had_them():
    """The values of spec/volspike-original.md §5 (and §1.1, §1.8), written out."""
    config = load_config(environ={})
    # §5: the backends and Telegram are off until configured
    assert config.volspike_api_url is None and config.volspike_api_key is None
    assert config.volspike_api_url_dev is None and config.volspike_api_key_dev is None
    assert config.telegram_token is None and config.chat_id is None
    assert not config.has_prod_backend and not config.has_dev_backend
    assert not config.has_telegram
    # §5: the OI poller
    assert config.oi_max_req_per_min == 2000
    assert (config.oi_min_interval_sec, config.oi_max_interval_sec) == (5, 20)
    assert (
        config.oi_spike_threshold_pct_5min,
        config.oi_spike_threshold_pct_15min,
        config.oi_spike_threshold_pct_60min,
    ) == (0.03, 0.07, 0.12)
    assert (
        config.oi_lookback_window_5min,
        config.oi_lookback_window_15min,
        config.oi_lookback_window_60min,
    ) == (300, 900, 3600)
    assert (
        config.oi_alert_cooldown_5min,
        config.oi_alert_cooldown_15min,
        config.oi_alert_cooldown_60min,
    ) == (600, 900, 3600)
    assert config.oi_min_delta_contracts == 5000
    # §5: the liquid-universe job
    assert (config.oi_liquid_enter_quote_24h, config.oi_liquid_exit_quote_24h) == (4e6, 2e6)
    # §5 hard-coded: the funding API address, staleness, USDCUSDT excluded
    assert (config.funding_api_host, config.funding_api_port) == ("127.0.0.1", 8888)
    assert config.stale_after_s == 180
    assert config.oi_universe_exclude == ("USDCUSDT",)
    # §5 legacy variables: known (they warn), never read
    assert {
        "OI_SPIKE_THRESHOLD_PCT",
        "OI_DUMP_THRESHOLD_PCT",
        "OI_LOOKBACK_WINDOW_SEC",
        "OI_ALERT_COOLDOWN_SEC",
        "WS_FUNDING_ENABLED",
        "WS_FUNDING_API_URL",
        "BINANCE_PROXY_URL",
    } <= set(LEGACY_ENV)
    # §1.1 and §1.8: the volume scanner's constants and hosts
    assert (config.volume_multiple, config.min_quote_vol) == (3, 3_000_000)
    assert config.binance_rest_url == "https://fapi.binance.com"
    assert config.telegram_api_url == "https://api.telegram.org"
    # ours, not the original's: the WebSocket's /market route
    assert config.binance_ws_url == "wss://fstream.binance.com/market"
    assert config.sources == {}


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
        (
            {"OI_MIN_INTERVAL_SEC": "30"},
            "OI_MIN_INTERVAL_SEC: 30 is greater than OI_MAX_INTERVAL_SEC (20)",
        ),
        (
            {"OI_MAX_INTERVAL_SEC": "2.5"},
            "OI_MAX_INTERVAL_SEC: 2.5 is less than OI_MIN_INTERVAL_SEC (5)",
        ),
        (
            {"OI_LIQUID_EXIT_QUOTE_24H": "5e6"},
            "OI_LIQUID_EXIT_QUOTE_24H: 5000000 is greater than OI_LIQUID_ENTER_QUOTE_24H (4000000)",
        ),
    ],
)
def test_a_wrong_value_fails_with_one_line_naming_the_setting(environ, message):
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "OI_SPIKE_THRESHOLD_PCT_5MN",
            (
                "OI_SPIKE_THRESHOLD_PCT_5MN: unknown setting, "
                "did you mean OI_SPIKE_THRESHOLD_PCT_5MIN?"
            ),
        ),
        ("FUNDING_API_PROT", "FUNDING_API_PROT: unknown setting, did you mean FUNDING_API_PORT?"),
        (
            "VOLSPIKE_STAET_DIR",
            "VOLSPIKE_STAET_DIR: unknown setting, did you mean VOLSPIKE_STATE_DIR?",
        ),
        (
            "VOLSPIKE_LOGLEVEL",
            "VOLSPIKE_LOGLEVEL: unknown setting, did you mean VOLSPIKE_LOG_LEVEL?",
        ),
        ("OI_NONSENSE", "OI_NONSENSE: unknown setting (a typo?)"),
        ("VOLSPIKE_X", "VOLSPIKE_X: unknown setting (a typo?)"),
        # a retired name is never suggested, however close
        ("OI_ALERT_COOLDOWN_SECS", "OI_ALERT_COOLDOWN_SECS: unknown setting"),
    ],
)
def test_an_unknown_name_under_our_own_prefixes_fails_and_suggests_the_closest(name, message):
    with pytest.raises(ConfigError) as info:
        load_config(environ={name: "1"})
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert "OI_ALERT_COOLDOWN_SEC?" not in text


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("TELEGRAM_TOKN", "TELEGRAM_TOKEN"),
        ("TELEGRAM_API_URI", "TELEGRAM_API_URL"),
        ("CHATID", "CHAT_ID"),
        ("CHAT_IDS", "CHAT_ID"),
        ("BINANCE_WS_URI", "BINANCE_WS_URL"),
        ("BINANCE_REST_URI", "BINANCE_REST_URL"),
        ("VOLUME_MULTIPLIER", "VOLUME_MULTIPLE"),
        ("MIN_QUOTE_VOLUME", "MIN_QUOTE_VOL"),
        ("TELEGRAM_BOT_TOKEN", "TELEGRAM_TOKEN"),
    ],
)
def test_a_shared_prefix_name_close_to_one_of_ours_is_a_warning_not_an_error(name, suggestion):
    # an environment file may be shared with other programs (TELEGRAM_BOT_TOKEN is common):
    # a near miss there is worth a warning, never a daemon that does not start
    warnings: list[str] = []
    assert load_config(environ={name: "x"}, warn=warnings.append) == Config()
    assert warnings == [f"{name} is not a setting (ignored); did you mean {suggestion}?"]


def test_other_softwares_variables_under_shared_prefixes_are_ignored():
    environ = {
        "TELEGRAM_CHAT_ID": "5",
        "TELEGRAM_CHANNEL": "news",
        "BINANCE_API_KEY": "k",
        "BINANCE_API_SECRET": "s",
        "BINANCE_PROXY": "http://p",  # close only to the retired BINANCE_PROXY_URL
        "MIN_FREE_SPACE": "1G",
        "CHATTY": "1",
        "PATH": "/bin",
        "HOME": "/root",
    }
    assert load_config(environ=environ) == Config()


def test_our_variables_that_are_not_settings_are_accepted():
    assert load_config(environ={"VOLSPIKE_FIXTURES_DIR": "/x"}) == Config()
    assert load_config(environ={"VOLSPIKE_SIM_FIXTURES": "/x"}) == Config()


def test_retired_variables_are_not_unknown_even_without_a_warning_callback():
    assert load_config(environ=dict.fromkeys(LEGACY_ENV, "1")) == Config()


def test_the_first_unknown_name_is_the_same_whatever_the_environments_order():
    names = ["VOLSPIKE_ZZZ", "OI_AAA", "FUNDING_API_MMM"]
    for environ in (dict.fromkeys(names, "1"), dict.fromkeys(reversed(names), "1")):
        with pytest.raises(ConfigError, match=r"^FUNDING_API_MMM: "):
            load_config(environ=environ)


@pytest.mark.parametrize(
    ("toml", "environ", "overrides", "message"),
    [
        (
            None,
            {},
            {"volspike_api_url": "http://x"},
            "volspike_api_key: must be set together with --set volspike_api_url",
        ),
        (
            'telegram_token = "1:abc"',
            {},
            {},
            "chat_id: must be set together with telegram_token (only one of the two is set)",
        ),
        (
            None,
            {"CHAT_ID": "5"},
            {},
            "TELEGRAM_TOKEN: must be set together with CHAT_ID",
        ),
        (
            'volspike_api_url_dev = "http://d"\nvolspike_api_key_dev = "k"',
            {},
            {},
            "volspike_api_url_dev: a DEV backend needs a PROD backend too (volspike_api_url)",
        ),
        (
            None,
            {"OI_MIN_INTERVAL_SEC": "8"},
            {"oi_max_interval_sec": "6"},
            "OI_MIN_INTERVAL_SEC: 8 is greater than --set oi_max_interval_sec (6)",
        ),
        (
            None,
            {},
            {"oi_max_interval_sec": "1"},
            "--set oi_max_interval_sec: 1 is less than oi_min_interval_sec (5)",
        ),
    ],
)
def test_a_pairing_error_names_each_setting_as_the_user_wrote_it(
    tmp_path, toml, environ, overrides, message
):
    path = None
    if toml is not None:
        path = tmp_path / "c.toml"
        path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(toml_path=path, environ=environ, overrides=overrides)
    assert str(info.value).startswith(message)


def test_an_unknown_toml_key_or_invalid_toml_is_an_error(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("funding_api_prot = 1\n")
    with pytest.raises(
        ConfigError, match="funding_api_prot: unknown setting, did you mean funding_api_port"
    ):
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
    with pytest.raises(ConfigError, match=r"--set nope: unknown setting \(a typo\?\)"):
        load_config(environ={}, overrides={"nope": "1"})
    with pytest.raises(ConfigError, match="did you mean stale_after_s"):
        load_config(environ={}, overrides={"stale_after": "1"})


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


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://user:pw@host.test/api", "https://host.test/api"),
        ("https://user:p%40ss:w@host.test:8443/a?b=c@d#e", "https://host.test:8443/a?b=c@d#e"),
        ("https://token@host.test", "https://host.test"),
        ("http://a:b@c@host.test/x", "http://host.test/x"),
        ("https://host.test/path@x?y=z@w", "https://host.test/path@x?y=z@w"),
        ("https://host.test", "https://host.test"),
        ("not a url with user:pw@host", "not a url with user:pw@host"),
        ("", ""),
    ],
)
def test_strip_userinfo_removes_only_the_credentials(url, stripped):
    assert strip_userinfo(url) == stripped


def test_a_password_in_a_url_is_never_printed_and_is_registered_as_a_secret():
    config = load_config(
        environ={
            "VOLSPIKE_API_URL": "https://ingest:hunter2-pw@backend.test/",
            "VOLSPIKE_API_KEY": "prod-secret-1",
            "VOLSPIKE_API_URL_DEV": "https://dev-token-xyz@dev.test",
            "VOLSPIKE_API_KEY_DEV": "dev-secret-2",
            "BINANCE_REST_URL": "http://u:p%23ss-word@127.0.0.1:9",
        }
    )
    text = render_config(config)
    assert "hunter2-pw" not in text
    assert "dev-token-xyz" not in text
    assert "p%23ss-word" not in text
    assert "volspike_api_url             = https://backend.test (credentials hidden)  # env" in text
    assert "binance_rest_url             = http://127.0.0.1:9 (credentials hidden)  # env" in text
    assert "telegram_api_url             = https://api.telegram.org  # default" in text
    assert set(config.secrets) == {
        "prod-secret-1",
        "dev-secret-2",
        "hunter2-pw",
        "dev-token-xyz",
        "p%23ss-word",
        "p#ss-word",
    }


def test_replace_validates_the_result():
    with pytest.raises(ConfigError):
        Config().replace(volspike_api_url="http://x")
    assert Config().replace(funding_api_port=0).funding_api_port == 0


def test_every_setting_has_a_unique_environment_name():
    envs = [s.env for s in SETTINGS]
    assert len(envs) == len(set(envs))


def test_the_readme_configuration_table_matches_the_settings():
    assert settings_table() in README.read_text(encoding="utf-8")
