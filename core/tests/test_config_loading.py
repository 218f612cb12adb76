"""Finding config.yml, interpolating environment variables, and what a loaded Config offers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from re import escape

import pytest

from questfoundry.config import Config, find_config, load_config
from questfoundry.contracts.errors import ConfigError


def write_config(folder: Path, text: str, name: str = "config.yml") -> Path:
    project = folder / ".questfoundry"
    project.mkdir(parents=True, exist_ok=True)
    path = project / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- finding


def test_config_is_found_in_a_parent_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path, "{}")
    nested = tmp_path / "chapters" / "one"
    nested.mkdir(parents=True)
    assert find_config(nested, env={}) == path


def test_nearest_project_wins_over_an_outer_one(tmp_path: Path) -> None:
    write_config(tmp_path, "{}")
    inner = write_config(tmp_path / "inner", "{}")
    assert find_config(tmp_path / "inner", env={}) == inner


def test_config_yaml_extension_is_found_too(tmp_path: Path) -> None:
    path = write_config(tmp_path, "{}", name="config.yaml")
    assert find_config(tmp_path, env={}) == path


def test_yml_is_preferred_when_both_extensions_exist(tmp_path: Path) -> None:
    write_config(tmp_path, "{}", name="config.yaml")
    yml = write_config(tmp_path, "{}", name="config.yml")
    assert find_config(tmp_path, env={}) == yml


def test_no_config_anywhere_finds_nothing(tmp_path: Path) -> None:
    assert find_config(tmp_path, env={}) is None


def test_environment_variable_overrides_the_search(tmp_path: Path) -> None:
    write_config(tmp_path, "{}")
    elsewhere = tmp_path / "elsewhere.yml"
    elsewhere.write_text("{}")
    assert find_config(tmp_path, env={"QUESTFOUNDRY_CONFIG": str(elsewhere)}) == elsewhere


def test_environment_variable_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError, match=r"QUESTFOUNDRY_CONFIG names .*nope\.yml"):
        find_config(tmp_path, env={"QUESTFOUNDRY_CONFIG": str(missing)})


def test_explicit_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yml", env={})


def test_explicit_path_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path, env={})


# ----------------------------------------------------------------------------- loading


def test_without_a_file_the_config_is_empty_and_rooted_at_start(tmp_path: Path) -> None:
    config = load_config(env={}, start=tmp_path)
    assert config.data == {}
    assert config.path is None
    assert config.project_dir == tmp_path / ".questfoundry"


def test_empty_file_is_a_valid_empty_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "# nothing configured yet\n")
    config = load_config(env={}, start=tmp_path)
    assert config.data == {}
    assert config.path == path
    assert config.project_dir == path.parent


def test_explicit_path_wins_over_the_project_file(tmp_path: Path) -> None:
    write_config(tmp_path, "retry: {max_retries: 1}")
    other = tmp_path / "other.yml"
    other.write_text("retry: {max_retries: 7}")
    assert load_config(other, env={}, start=tmp_path).get("retry.max_retries") == 7


def test_bad_yaml_names_line_and_column_on_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "caching:\n  enabled: true\n   backend: file\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "invalid YAML at line 3, column 11" in message
    assert "\n" not in message
    assert str(path) in message


def test_duplicate_keys_are_refused_rather_than_silently_overwritten(tmp_path: Path) -> None:
    path = write_config(tmp_path, "retry:\n  max_retries: 1\n  max_retries: 2\n")
    with pytest.raises(ConfigError, match="line 3, column 3: duplicate key 'max_retries'"):
        load_config(path, env={})


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate_error(tmp_path: Path) -> None:
    text = (
        "providers:\n  text:\n"
        "    openai: &base {model: gpt-4o, temperature: 0.5}\n"
        "    azure:\n      <<: *base\n      model: gpt-4o-mini\n"
    )
    config = load_config(write_config(tmp_path, text), env={})
    assert config.get("providers.text.azure") == {"model": "gpt-4o-mini", "temperature": 0.5}


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write_config(tmp_path, "just a string\n")
    with pytest.raises(
        ConfigError, match=escape("top level must be a mapping of sections, got the string")
    ):
        load_config(path, env={})


def test_non_string_keys_are_reported_with_their_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, "roles:\n  1: {temperature: 0.2}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.path == "roles.1"
    assert "is not a string; quote it" in str(caught.value)


# ----------------------------------------------------------------------------- interpolation


def test_variables_are_substituted_inside_strings(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "providers:\n  text:\n    ollama:\n      base_url: http://${HOST}:${PORT}/api\n"
    )
    config = load_config(path, env={"HOST": "gpu-box", "PORT": "11434"})
    assert config.get("providers.text.ollama.base_url") == "http://gpu-box:11434/api"


def test_default_applies_when_variable_is_unset_or_empty(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "state:\n  path: ${STATE_DIR:-.questfoundry/state}\n"
        "pricing:\n  ledger_path: ${LEDGER:-l.db}\n",
    )
    config = load_config(path, env={"LEDGER": ""})
    assert config.section("state") == {"path": ".questfoundry/state"}
    assert config.get("pricing.ledger_path") == "l.db"


def test_empty_default_is_allowed(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "providers:\n  text:\n    openai:\n      organization: ${ORG:-}\n"
    )
    assert load_config(path, env={}).get("providers.text.openai.organization") == ""


def test_missing_variable_fails_only_when_its_value_is_read(tmp_path: Path) -> None:
    text = (
        "providers:\n  text:\n    openai:\n      api_key: ${MY_KEY}\npricing:\n  ledger_path: l\n"
    )
    config = load_config(write_config(tmp_path, text), env={})
    assert config.get("pricing.ledger_path") == "l"
    assert config.section("caching") == {}
    with pytest.raises(ConfigError) as caught:
        config.get("providers.text.openai")
    assert caught.value.path == "providers.text.openai.api_key"
    assert "environment variable MY_KEY is not set" in str(caught.value)


def test_every_missing_variable_is_reported_at_once(tmp_path: Path) -> None:
    text = "state:\n  path: ${STATE}\ncaching:\n  backend: ${CACHE}\n"
    config = load_config(write_config(tmp_path, text), env={})
    with pytest.raises(ConfigError) as caught:
        config.require_variables()
    message = str(caught.value)
    assert caught.value.path == "caching.backend"  # errors are sorted by path
    assert "CACHE is not set" in message
    assert "state.path: environment variable STATE is not set" in message


def test_doubled_dollar_writes_a_literal_reference(tmp_path: Path) -> None:
    path = write_config(tmp_path, "state:\n  path: $${NOT_A_VAR}-$$x\n")
    assert load_config(path, env={}).get("state.path") == "${NOT_A_VAR}-$$x"


@pytest.mark.parametrize(
    "reference", ["${1BAD}", "${UNCLOSED", "${VAR-default}", "${}", "${A:-${B}}"]
)
def test_malformed_references_are_errors(tmp_path: Path, reference: str) -> None:
    path = write_config(tmp_path, f"state:\n  path: '{reference}'\n")
    with pytest.raises(ConfigError, match=escape("state.path: malformed variable reference")):
        load_config(path, env={"VAR": "x"})


def test_whole_value_reference_becomes_a_number_where_the_schema_wants_one(tmp_path: Path) -> None:
    text = (
        "retry:\n  max_retries: ${RETRIES}\n  respect_retry_after: ${RESPECT}\n"
        "caching:\n  ttl_seconds: ${TTL}\n"
    )
    config = load_config(
        write_config(tmp_path, text), env={"RETRIES": "5", "RESPECT": "false", "TTL": "0.5"}
    )
    assert config.get("retry.max_retries") == 5
    assert config.get("retry.respect_retry_after") is False
    assert config.get("caching.ttl_seconds") == 0.5


def test_whole_value_reference_stays_a_string_where_the_schema_accepts_one(tmp_path: Path) -> None:
    text = "providers:\n  text:\n    openai:\n      api_key: ${KEY}\n      model: ${MODEL}\n"
    config = load_config(write_config(tmp_path, text), env={"KEY": "12345", "MODEL": "true"})
    assert config.get("providers.text.openai.api_key") == "12345"
    assert config.get("providers.text.openai.model") == "true"


def test_partly_interpolated_value_is_never_coerced(tmp_path: Path) -> None:
    path = write_config(tmp_path, "retry:\n  max_retries: ${A}${B}\n")
    with pytest.raises(
        ConfigError, match=escape("retry.max_retries: expected an integer, got the string")
    ):
        load_config(path, env={"A": "1", "B": "2"})


def test_coerced_value_is_still_validated(tmp_path: Path) -> None:
    path = write_config(tmp_path, "retry:\n  max_retries: ${RETRIES}\n")
    with pytest.raises(
        ConfigError, match=escape("retry.max_retries: 99 is greater than the maximum of 20")
    ):
        load_config(path, env={"RETRIES": "99"})


def test_variables_inside_lists_are_substituted(tmp_path: Path) -> None:
    path = write_config(tmp_path, "roles:\n  scene_smith:\n    stop: ['${END}', '---']\n")
    assert load_config(path, env={"END": "THE END"}).get("roles.scene_smith.stop") == [
        "THE END",
        "---",
    ]


# ----------------------------------------------------------------------------- Config


def test_get_walks_dotted_paths_and_list_indices() -> None:
    config = Config({"roles": {"x": {"stop": ["a", "b"]}}})
    assert config.get("roles.x.stop.1") == "b"
    assert config.get("roles.x.stop.5", "none") == "none"
    assert config.get("roles.y.model", "default") == "default"
    assert config.get("roles.x.stop.first") is None


def test_section_is_empty_when_absent_and_a_copy_when_present() -> None:
    config = Config({"caching": {"per_provider": {"openai": {"enabled": False}}}})
    assert config.section("retry") == {}
    section = config.section("caching")
    section["per_provider"]["openai"]["enabled"] = True
    assert config.get("caching.per_provider.openai.enabled") is False


def test_namespace_is_the_project_name_when_set(tmp_path: Path) -> None:
    config = Config({"project": {"name": "dragon-book"}}, project_dir=tmp_path / ".questfoundry")
    assert config.namespace == "dragon-book"


def test_namespace_defaults_to_the_project_root_folder_name(tmp_path: Path) -> None:
    root = tmp_path / "haunted-lighthouse"
    write_config(root, "{}")
    (root / "chapters").mkdir()
    assert load_config(env={}, start=root / "chapters").namespace == "haunted-lighthouse"


def test_namespace_without_a_file_is_the_start_folder_name(tmp_path: Path) -> None:
    start = tmp_path / "my-book"
    start.mkdir()
    assert load_config(env={}, start=start).namespace == "my-book"


# ----------------------------------------------------------------------------- secrets


def test_redacted_hides_secret_keys_env_secrets_and_url_passwords(tmp_path: Path) -> None:
    text = (
        "providers:\n  text:\n    openai:\n      api_key: ${OPENAI_API_KEY}\n"
        "      organization: ${ORG_TOKEN}\n      model: gpt-4o\n"
        "    gemini:\n      api_key: literal-key-in-file\n"
        "    ollama:\n      base_url: http://:hunter2@cache:6379/0\n"
        "state:\n  path: http://worker:s3cret@state:6379/1\npricing:\n  ledger_path: ${PREFIX}\n"
    )
    env = {"OPENAI_API_KEY": "sk-live-123", "ORG_TOKEN": "org-999", "PREFIX": "qf"}
    config = load_config(write_config(tmp_path, text), env=env)
    shown = config.redacted()
    assert shown["providers"]["text"]["openai"] == {
        "api_key": "***",
        "organization": "***",
        "model": "gpt-4o",
    }
    assert shown["providers"]["text"]["gemini"]["api_key"] == "***"
    assert shown["providers"]["text"]["ollama"]["base_url"] == "http://:***@cache:6379/0"
    assert shown["state"] == {"path": "http://worker:***@state:6379/1"}
    assert shown["pricing"] == {"ledger_path": "qf"}
    for secret in ("sk-live-123", "org-999", "literal-key-in-file", "hunter2", "s3cret"):
        assert secret not in repr(shown)
    assert config.get("providers.text.openai.api_key") == "sk-live-123"  # data itself is intact


def test_prices_named_like_tokens_are_not_secrets() -> None:
    data = {"rate_limiting": {"providers": {"openai": {"cost_per_input_token": 0.00002}}}}
    assert Config(data).redacted() == data


def test_redacted_is_a_deep_copy() -> None:
    config = Config({"roles": {"x": {"stop": ["a"]}}})
    config.redacted()["roles"]["x"]["stop"].append("b")
    assert config.get("roles.x.stop") == ["a"]


def test_importing_config_loads_neither_yaml_nor_jsonschema() -> None:
    code = (
        "import sys, questfoundry, questfoundry.config\n"
        "loaded = {'yaml', 'jsonschema'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
