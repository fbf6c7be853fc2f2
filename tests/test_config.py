"""Settings: one declaration per variable, one reading rule, and the README and .env.example in step."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import fields

import pytest

from lib import logs
from lib.cli import call_app
from lib.config import SettingError, Settings, variables
from lib.web import Endpoint, Request
from tests.conftest import ROOT

_BACKTICKED = re.compile(r"`([^`]*)`")


def _parser(variable: str):
    return next(f.metadata["parse"] for f in fields(Settings) if variable in f.metadata["env"])


def _unset(default: object) -> bool:
    return default is None or default in ("", ())


def test_no_variables_means_the_declared_defaults():
    assert Settings.from_env({}) == Settings()


def test_empty_means_the_default_and_zero_means_zero():
    blank = Settings.from_env({"RETRY_MAX_WAIT_S": " ", "BM25_K1": "", "GEMINI_BASE_URL": ""})
    assert blank.retry_max_wait_s == 20.0 and blank.bm25_k1 == 1.2
    assert blank.gemini_base_url == Settings().gemini_base_url
    zero = Settings.from_env({"RETRY_MAX_WAIT_S": "0", "BM25_K1": "0", "BM25_B": "0", "RATE_LIMIT_RPM": "0"})
    assert (zero.retry_max_wait_s, zero.bm25_k1, zero.bm25_b, zero.rate_limit_rpm) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DATABASE_CONNECT_TIMEOUT_S", "0", "greater than 0"),
        ("REQUEST_TIMEOUT_S", "-1", "greater than 0"),
        ("DATABASE_POOL_SIZE", "0", "at least 1"),
        ("MAX_RETRIES", "two", "whole number"),
        ("RETRY_MAX_WAIT_S", "nan", "number"),
        ("BM25_B", "1.5", "from 0 to 1"),
        ("ALLOW_BYOK", "maybe", "true"),
        ("LOG_LEVEL", "loud", "debug"),
    ],
)
def test_a_value_that_does_not_fit_names_its_variable(variable, value, says):
    with pytest.raises(SettingError) as raised:
        Settings.from_env({variable: value})
    assert str(raised.value).startswith(variable) and says in str(raised.value)


app = Endpoint("configured", auth=False)


@app.get()
async def configured(request: Request, _query: object) -> dict:
    return {}


def test_a_bad_value_is_a_503_from_every_function(env):
    env(MAX_RETRIES="lots")
    status, _, raw = asyncio.run(call_app(app, "GET", None))
    error = json.loads(raw)["error"]
    assert status == 503 and error["code"] == "configuration_error" and "MAX_RETRIES" in error["message"]
    env(MAX_RETRIES="3")
    assert asyncio.run(call_app(app, "GET", None))[0] == 200


def test_second_names_are_read_when_the_first_is_unset():
    settings = Settings.from_env({"GOOGLE_API_KEY": "g", "AWS_REGION": "eu-west-1"})
    assert settings.gemini_api_key == "g" and settings.s3_region == "eu-west-1"
    first = Settings.from_env({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "g", "S3_REGION": "x", "AWS_REGION": "y"})
    assert first.gemini_api_key == "a" and first.s3_region == "x"


def test_relative_data_folder_is_under_the_project_root():
    assert Settings.from_env({"PGDATA_DIR": ".data/pg"}).pgdata_dir == Settings().pgdata_dir


def test_log_level_applies(env, capfd):
    try:
        env(LOG_LEVEL="warning")
        asyncio.run(call_app(app, "GET", None))
        logs.log("warning", "loud_event")
        written = capfd.readouterr().err
        assert "loud_event" in written and '"event": "request"' not in written
        env(LOG_LEVEL=None)
        asyncio.run(call_app(app, "GET", None))
        assert '"event": "request"' in capfd.readouterr().err
    finally:
        logs.set_level("info")


def _readme_rows() -> list[tuple[list[str], str]]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| variable | default | what it does |"):].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        names_cell, default_cell = line.split(" | ")[:2]
        names_cell = re.sub(r"\(or [^)]*\)", "", names_cell)  # a second name shares the first's default
        rows.append((_BACKTICKED.findall(names_cell), default_cell.strip()))
    return rows


def test_readme_table_lists_every_variable_with_its_default():
    rows = _readme_rows()
    listed = {name for names, _ in rows for name in names}
    readme = (ROOT / "README.md").read_text()
    assert [v for v in variables() if v not in listed and f"(or `{v}`)" not in readme] == []
    declared = variables()
    for names, cell in rows:
        parts = cell.split(", ") if len(cell.split(", ")) == len(names) else [cell]
        if len(parts) != len(names):
            continue
        for name, part in zip(names, parts, strict=True):
            default = declared[name]
            if part.startswith("none"):
                assert _unset(default), f"README says {name} has no default; the code says {default!r}"
            elif literal := re.match(r"^`([^`]*)`", part):
                assert _parser(name)(literal[1]) == default, f"README: {name}={literal[1]}; code: {default!r}"


def test_env_example_lists_every_variable_with_its_default():
    text = (ROOT / ".env.example").read_text()
    platform = {"VERCEL", "VERCEL_ENV"}  # set by Vercel itself
    assert [v for v in variables() if v not in platform and not re.search(rf"\b{v}\b", text)] == []
    declared = variables()
    for name, value in re.findall(r"^# ([A-Z0-9_]+)=(\S*)", text, re.MULTILINE):
        if name in declared and value and not _unset(declared[name]):
            assert _parser(name)(value) == declared[name], f".env.example: {name}={value}"


# --- .env for the command line ----------------------------------------------------------------------


def test_dotenv_sets_what_the_environment_lacks_and_never_overrides(tmp_path, monkeypatch):
    from lib.config import load_dotenv

    (tmp_path / ".env").write_text(
        "# local settings\nexport DOTENV_TEST_A=from-file\nDOTENV_TEST_B='kept #literally'\n"
        'DOTENV_TEST_C="two\\nlines" # a comment\nDOTENV_TEST_D=\nDOTENV_TEST_E=bare value # comment\n')
    monkeypatch.delenv("PYTEST_VERSION", raising=False)
    monkeypatch.setenv("DOTENV_TEST_A", "from-shell")
    monkeypatch.setenv("DOTENV_TEST_D", "")  # set, even empty: the shell wins
    for name in "BCE":
        monkeypatch.delenv(f"DOTENV_TEST_{name}", raising=False)
    assert sorted(load_dotenv(tmp_path / ".env")) == ["DOTENV_TEST_B", "DOTENV_TEST_C", "DOTENV_TEST_E"]
    import os

    assert os.environ["DOTENV_TEST_A"] == "from-shell" and os.environ["DOTENV_TEST_D"] == ""
    assert os.environ["DOTENV_TEST_B"] == "kept #literally"
    assert os.environ["DOTENV_TEST_C"] == "two\nlines"
    assert os.environ["DOTENV_TEST_E"] == "bare value"


def test_dotenv_is_left_alone_under_pytest_and_a_bad_line_is_named(tmp_path, monkeypatch):
    from lib.config import load_dotenv, read_dotenv

    (tmp_path / ".env").write_text("DOTENV_TEST_F=1\n")
    monkeypatch.delenv("DOTENV_TEST_F", raising=False)
    assert load_dotenv(tmp_path / ".env") == []  # PYTEST_VERSION is set in this process
    (tmp_path / "bad.env").write_text("OK=1\nnot a setting\n")
    with pytest.raises(SettingError, match="bad.env line 2"):
        read_dotenv(tmp_path / "bad.env")
    assert read_dotenv(tmp_path / "missing.env") == {}


def test_the_command_line_reads_dotenv_first(monkeypatch, capsys):
    import lib.cli

    calls = []
    monkeypatch.setattr(lib.cli, "load_dotenv", lambda: calls.append("loaded") or [])
    with pytest.raises(SystemExit):
        lib.cli.main(["--help"])
    assert calls == ["loaded"]
    capsys.readouterr()
    app = Endpoint("dotenv_probe", auth=False)

    @app.get()
    async def probe(request: Request, _query: object) -> dict:
        return {"ok": True}

    with pytest.raises(SystemExit) as done:
        lib.cli.run_function(app, [])
    assert done.value.code == 0 and calls == ["loaded", "loaded"]
    assert json.loads(capsys.readouterr().out) == {"ok": True}
