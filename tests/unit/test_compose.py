"""Static checks of the production-like stack: docker-compose.yaml, Dockerfile, .env.example.

No Docker engine runs here, so the file is checked the way Compose reads it: PyYAML resolves
anchors and merge keys, a small interpolator applies ``${VAR}``, ``${VAR:-default}``,
``${VAR:?message}`` (and the other Compose forms) from ``.env.example``, and the result is
validated by Debian's ``docker-compose config`` (Compose's own schema; no engine needed).
The project's own rules (loopback-only ports, no literal secrets, healthchecks, ...) are plain
functions over the compose dict; the negative cases at the end show each rule can fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
REQUIRED_SERVICES = {"postgres", "feedback-db", "redis", "minio", "minio-init", *AIRFLOW_SERVICES}
ONE_SHOT_SERVICES = {"airflow-init", "minio-init"}
PROJECT_FOLDERS = ("dags", "plugins", "include", "golden_set", "expectations")
# Compose must refuse to start without these (``${VAR:?...}`` at every use).
REQUIRED_SECRETS = {
    "AIRFLOW_DB_PASSWORD",
    "FEEDBACK_DB_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_S3_SECRET_ACCESS_KEY",
    "SLACK_WEBHOOK_URL",
}
# Airflow connection id -> conn_type, as the DAGs and plugins use them.
CONNECTIONS = {
    "feedback_db": "postgres",
    "aws_default": "aws",
    "openai_default": "openai",
    "slack_alerts": "slackwebhook",
}


# --------------------------------------------------------------------------- interpolation


class InterpolationError(ValueError):
    """A ``${...}`` expression is malformed, or a required variable has no value."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing a ``${`` whose body starts at ``start`` (nesting aware)."""
    depth, i = 1, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
        elif text.startswith("${", i):
            depth, i = depth + 1, i + 2
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
            i += 1
        else:
            i += 1
    raise InterpolationError(f"unclosed '${{' in {text!r}")


def _substitute(expr: str, env: Mapping[str, str]) -> str:
    name_match = _NAME.match(expr)
    if not name_match:
        raise InterpolationError(f"invalid interpolation format: ${{{expr}}}")
    name, rest = name_match.group(), expr[name_match.end() :]
    if not rest:
        return env.get(name, "")
    op = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise InterpolationError(f"invalid interpolation format: ${{{expr}}}")
    arg = rest[len(op) :]
    is_set, non_empty = name in env, bool(env.get(name))
    present = non_empty if op.startswith(":") else is_set
    if op.endswith("-"):
        return env[name] if present else interpolate(arg, env)
    if op.endswith("?"):
        if not present:
            raise InterpolationError(f"required variable {name} is missing a value: {interpolate(arg, env)}")
        return env[name]
    return interpolate(arg, env) if present else ""  # the '+' forms


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Apply Compose variable interpolation to one string.

    Supports ``$$`` (a literal ``$``), ``$VAR``, ``${VAR}``, and the ``:-``/``-`` (default),
    ``:?``/``?`` (required) and ``:+``/``+`` (alternative) forms, with nested expressions in the
    default. The colon forms treat an empty value like an unset one, as in Compose.

    Raises:
        InterpolationError: malformed expression, or a required variable without a value.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2 : end], env))
            i = end + 1
        elif name := _NAME.match(text, i + 1):
            out.append(env.get(name.group(), ""))
            i = name.end()
        else:
            raise InterpolationError(f"invalid interpolation format at {text[i:]!r} (use $$ for a literal $)")
    return "".join(out)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """A copy of a loaded YAML tree with every string value interpolated (keys untouched)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    return node


def referenced_variables(text: str) -> set[str]:
    """Every variable name referenced anywhere in ``text``, defaults and nesting included."""
    names: set[str] = set()
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text[i] == "$":
            match = _NAME.match(text, i + 2 if text.startswith("${", i) else i + 1)
            if match:
                names.add(match.group())
        i += 1
    return names


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a Compose ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes.

    Raises:
        ValueError: a line that is not a comment, blank, or a valid ``KEY=value``.
    """
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.fullmatch(key):
            raise ValueError(f"line {number}: not KEY=value: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        env[key] = value
    return env


# --------------------------------------------------------------------------- project rules

SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN", "WEBHOOK")
# A value that is nothing but a variable reference with no usable literal fallback:
# ${VAR}, ${VAR?msg}, ${VAR:?msg}, ${VAR-} or ${VAR:-}.
_SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}")
_URL_PART = r"(?:\$\{[^}]*\}|[^\s:/@\"'$])"
_URL_CREDENTIALS = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://({_URL_PART}*):({_URL_PART}+)@")


def is_secret_name(key: str) -> bool:
    """Whether a setting name denotes a secret (``*_FILE``/``*_PATH`` name where one lives)."""
    upper = key.upper()
    return any(word in upper for word in SECRET_WORDS) and not upper.endswith(("_FILE", "_PATH"))


def is_secret_reference(value: Any) -> bool:
    """Whether ``value`` is a bare ``${VAR}``-style reference without a literal default."""
    return isinstance(value, str) and _SECRET_REFERENCE.fullmatch(value.strip()) is not None


def environment_items(service: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(name, value)`` pairs of a service's ``environment`` in dict or ``KEY=VAL`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return list(env.items())
    return [tuple(item.split("=", 1)) if "=" in item else (item, None) for item in env]


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}[{index}]")


def _json_secret_violations(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                yield from _json_secret_violations(value, f"{where}.{key}")
            elif is_secret_name(key) and value not in (None, "") and not is_secret_reference(value):
                yield f"{where}.{key}: literal secret {value!r}"


def literal_secret_violations(compose: Mapping[str, Any]) -> list[str]:
    """Secrets written into the (un-interpolated) compose file instead of coming from ``.env``.

    Checks every environment entry whose name looks secret, the fields of every
    ``AIRFLOW_CONN_*`` JSON value, and the password of every ``scheme://user:password@`` URL
    anywhere in the file. Each must be a bare ``${VAR}`` reference.
    """
    found: list[str] = []
    blocks = {name: svc for name, svc in compose.items() if name.startswith("x-") and isinstance(svc, dict)}
    blocks.update({f"services.{name}": svc for name, svc in (compose.get("services") or {}).items()})
    for where, block in blocks.items():
        for key, value in environment_items(block):
            if is_secret_name(key) and value not in (None, "") and not is_secret_reference(str(value)):
                found.append(f"{where}.environment.{key}: literal secret {value!r}")
            if key.startswith("AIRFLOW_CONN_") and isinstance(value, str) and value.lstrip().startswith("{"):
                try:
                    conn = json.loads(value)
                except json.JSONDecodeError as exc:
                    found.append(f"{where}.environment.{key}: not JSON ({exc})")
                    continue
                found.extend(_json_secret_violations(conn, f"{where}.environment.{key}"))
    for where, text in _strings(compose, "compose"):
        for match in _URL_CREDENTIALS.finditer(text):
            if not is_secret_reference(match.group(2)):
                found.append(f"{where}: literal password in URL {match.group(0)!r}")
    return found


def published_port_violations(compose: Mapping[str, Any]) -> list[str]:
    """Published ports that are reachable beyond the host's loopback (127.0.0.1)."""
    found: list[str] = []
    for name, svc in (compose.get("services") or {}).items():
        if svc.get("network_mode") == "host":
            found.append(f"{name}: network_mode host shares every host interface")
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            elif isinstance(port, int):
                host_ip = None  # a bare container port gets a random host port on all interfaces
            else:
                spec = str(port).split("/", 1)[0]
                if spec.startswith("["):
                    host_ip = spec[: spec.index("]") + 1]
                else:
                    parts = spec.split(":")
                    host_ip = parts[0] if len(parts) == 3 else None
            if host_ip != "127.0.0.1":
                found.append(f"{name}: port {port!r} is published on {host_ip or 'all interfaces'}")
    return found


def healthcheck_violations(compose: Mapping[str, Any], one_shot: set[str]) -> list[str]:
    """Long-running services (all but ``one_shot``) without an enabled healthcheck."""
    found: list[str] = []
    for name, svc in (compose.get("services") or {}).items():
        if name in one_shot:
            continue
        check = svc.get("healthcheck")
        if not check or check.get("disable") in (True, "true") or check.get("test") in (["NONE"], "NONE"):
            found.append(f"{name}: no healthcheck")
    return found


def dependency_violations(compose: Mapping[str, Any], one_shot: set[str]) -> list[str]:
    """``depends_on`` entries that do not wait for health (or completion of a one-shot job)."""
    services = compose.get("services") or {}
    found: list[str] = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            found.append(f"{name}: depends_on without conditions")
            continue
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            if dep not in services:
                found.append(f"{name}: depends on unknown service {dep}")
            elif dep in one_shot and condition != "service_completed_successfully":
                found.append(f"{name}: must wait for one-shot {dep} to complete, not {condition}")
            elif dep not in one_shot and condition != "service_healthy":
                found.append(f"{name}: must wait for {dep} to be healthy, not {condition}")
            elif condition == "service_healthy" and not services[dep].get("healthcheck"):
                found.append(f"{name}: waits for {dep} to be healthy but it has no healthcheck")
    return found


def bind_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container target -> host source of a service's short-syntax volumes."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts[rest.split(":", 1)[0]] = source
        else:
            mounts[volume["target"]] = volume.get("source", "")
    return mounts


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def raw_compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    return interpolate_tree(raw_compose, env_example)


# --------------------------------------------------------------------------- the interpolator

_ENV = {"A": "1", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("${A}", "1", id="braced"),
        pytest.param("$A-x", "1-x", id="unbraced"),
        pytest.param("${UNSET}", "", id="unset-is-empty"),
        pytest.param("$${A} and $$A", "${A} and $A", id="dollar-escape"),
        pytest.param("${UNSET:-d}", "d", id="colon-default-unset"),
        pytest.param("${EMPTY:-d}", "d", id="colon-default-empty"),
        pytest.param("${EMPTY-d}", "", id="default-only-when-unset"),
        pytest.param("${UNSET-d}", "d", id="default-unset"),
        pytest.param("${A:-d}", "1", id="default-not-used"),
        pytest.param("${UNSET:-${ALSO_UNSET:-z}}", "z", id="nested-default"),
        pytest.param("${UNSET:-$A}", "1", id="default-is-a-variable"),
        pytest.param("${EMPTY?m}", "", id="required-unset-only"),
        pytest.param("${A:?m}", "1", id="required-present"),
        pytest.param("${A:+alt}", "alt", id="alternative-set"),
        pytest.param("${UNSET:+alt}", "", id="alternative-unset"),
        pytest.param("x://${UNSET:-u}:${A}@h", "x://u:1@h", id="several-in-one-string"),
    ],
)
def test_interpolate_follows_compose_rules(template: str, expected: str) -> None:
    assert interpolate(template, _ENV) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param(
            "${UNSET:?set it in .env}", "UNSET is missing a value: set it in .env", id="required-unset"
        ),
        pytest.param("${EMPTY:?no}", "EMPTY is missing a value", id="required-empty"),
        pytest.param("${UNSET?no}", "UNSET is missing a value", id="required-strict-unset"),
        pytest.param("${A", "unclosed", id="unclosed"),
        pytest.param("${1A}", "invalid interpolation format", id="bad-name"),
        pytest.param("${A/x}", "invalid interpolation format", id="unknown-operator"),
        pytest.param("price $5", "invalid interpolation format", id="lone-dollar"),
    ],
)
def test_interpolate_rejects_bad_templates_and_missing_required(template: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=re.escape(message)):
        interpolate(template, _ENV)


def test_referenced_variables_sees_nested_names_and_skips_escapes() -> None:
    assert referenced_variables("$${NOT} $$NOT ${A:-${B:?x}} $C ${D}") == {"A", "B", "C", "D"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A=1\n# c\n\nB = two words  # note\n", {"A": "1", "B": "two words"}, id="plain"),
        pytest.param("export A='x # y'\nB=\"q\"\n", {"A": "x # y", "B": "q"}, id="quotes-export"),
        pytest.param("EMPTY=\n", {"EMPTY": ""}, id="empty"),
    ],
)
def test_parse_env_file(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(text) == expected


@pytest.mark.parametrize(
    "text", [pytest.param("JUSTAKEY\n", id="no-equals"), pytest.param("1A=x\n", id="bad-key")]
)
def test_parse_env_file_rejects_malformed_lines(text: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_env_file(text)


# --------------------------------------------------------------------------- docker-compose config

DOCKER_COMPOSE = shutil.which("docker-compose")
# CI installs Debian's docker-compose (.ci/run); elsewhere the check is skipped, never faked.
needs_docker_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None and os.environ.get("CI") != "true",
    reason="Debian's docker-compose is not installed (apt-get install docker-compose)",
)


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config -q`: parses, interpolates and validates against Compose's schema.

    It needs no Docker engine. `--env-file .env.example` supplies every variable.
    """
    assert DOCKER_COMPOSE, "docker-compose is required in CI (.ci/run installs it)"
    return subprocess.run(
        [DOCKER_COMPOSE, "--env-file", str(ROOT / ".env.example"), "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@needs_docker_compose
def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


@needs_docker_compose
@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("services", "redis", "restart_policy"), "always", id="unknown-service-key"),
        pytest.param(("services", "redis", "ports"), "6379:6379", id="ports-not-a-list"),
        pytest.param(
            ("services", "airflow-scheduler", "healthcheck", "retries"), "many", id="retries-not-an-int"
        ),
        pytest.param(
            ("services", "airflow-worker", "depends_on", "redis", "condition"), "ready", id="bad-condition"
        ),
    ],
)
def test_docker_compose_config_rejects_invalid_compose(
    raw_compose: dict[str, Any], tmp_path: Path, path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(raw_compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    bad = tmp_path / "docker-compose.yaml"
    bad.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    result = _compose_config(bad)
    assert result.returncode != 0


# --------------------------------------------------------------------------- the stack


def test_required_services_exist(compose: dict[str, Any]) -> None:
    assert REQUIRED_SERVICES <= set(compose["services"])


def test_airflow_services_run_the_celery_executor_from_the_project_image(compose: dict[str, Any]) -> None:
    for name, command in AIRFLOW_SERVICES.items():
        svc = compose["services"][name]
        env = dict(environment_items(svc))
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        if command is not None:
            assert svc["command"] == command, name


def test_api_server_is_published_on_loopback_8080_only(compose: dict[str, Any]) -> None:
    api = compose["services"]["airflow-apiserver"]
    assert api["command"] == "api-server"
    assert api["ports"] == ["127.0.0.1:8080:8080"]
    env = dict(environment_items(compose["services"]["airflow-worker"]))
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_every_published_port_binds_loopback(compose: dict[str, Any]) -> None:
    assert published_port_violations(compose) == []
    assert any(svc.get("ports") for svc in compose["services"].values())


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    one_shot = {name for name, svc in compose["services"].items() if svc.get("restart") == "no"}
    assert one_shot == ONE_SHOT_SERVICES
    assert healthcheck_violations(compose, one_shot) == []


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    assert dependency_violations(compose, ONE_SHOT_SERVICES) == []
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        deps = compose["services"][name]["depends_on"]
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert {"postgres", "redis", "feedback-db"} <= set(deps), name


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, "2", id="default-two"),
        pytest.param({"AIRFLOW_WORKER_REPLICAS": "5"}, "5", id="from-env"),
    ],
)
def test_worker_replicas_are_configurable(
    raw_compose: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    replicas = raw_compose["services"]["airflow-worker"]["deploy"]["replicas"]
    assert replicas == "${AIRFLOW_WORKER_REPLICAS:-2}"
    assert interpolate(replicas, env) == expected


def test_project_folders_are_mounted_into_every_airflow_service(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        mounts = bind_mounts(compose["services"][name])
        for folder in PROJECT_FOLDERS:
            assert mounts.get(f"/opt/airflow/{folder}") == f"./{folder}", (name, folder)
            assert (ROOT / folder).is_dir(), folder
        env = dict(environment_items(compose["services"][name]))
        assert env["FEEDBACKLOOP_GOLDEN_DIR"] == "/opt/airflow/golden_set"
        assert env["FEEDBACKLOOP_EXPECTATIONS_DIR"] == "/opt/airflow/expectations"


def test_admin_password_file_is_only_in_init_and_api_server(compose: dict[str, Any]) -> None:
    holders = {name for name, svc in compose["services"].items() if "/opt/airflow/auth" in bind_mounts(svc)}
    assert holders == {"airflow-init", "airflow-apiserver"}


def test_connections_are_json_built_from_env(compose: dict[str, Any]) -> None:
    for name in set(AIRFLOW_SERVICES):
        env = dict(environment_items(compose["services"][name]))
        for conn_id, conn_type in CONNECTIONS.items():
            conn = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
            assert conn["conn_type"] == conn_type, (name, conn_id)
    env = dict(environment_items(compose["services"]["airflow-worker"]))
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["extra"]["endpoint_url"] == "http://minio:9000"
    assert aws["extra"]["config_kwargs"] == {"s3": {"addressing_style": "path"}}
    feedback = json.loads(env["AIRFLOW_CONN_FEEDBACK_DB"])
    assert (feedback["host"], int(feedback["port"])) == ("feedback-db", 5432)
    assert env["FEEDBACKLOOP_STAGING_URI"] == "s3://feedbackloop-staging/airflow"


def test_no_literal_secrets_in_the_compose_file(raw_compose: dict[str, Any]) -> None:
    assert literal_secret_violations(raw_compose) == []


def test_required_secrets_stop_compose_when_missing(
    compose_text: str, raw_compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    for name in sorted(REQUIRED_SECRETS):
        # (?<!\$) skips $${VAR}: an escape for the container shell, not a Compose variable.
        uses = re.findall(rf"(?<!\$)\$\{{{name}([^A-Za-z0-9_][^}}]*)?\}}", compose_text)
        assert uses, f"{name} is not used"
        assert all(use.startswith(":?") for use in uses), f"{name} must be ${{{name}:?...}} at every use"
        without = {key: value for key, value in env_example.items() if key != name}
        with pytest.raises(InterpolationError, match=f"{name} is missing a value: set it in .env"):
            interpolate_tree(raw_compose, without)


def test_env_example_defines_exactly_the_variables_the_compose_file_uses(
    compose_text: str, env_example: dict[str, str]
) -> None:
    # Comments in the compose file may mention ${VAR} forms as documentation; skip them.
    body = "\n".join(line for line in compose_text.splitlines() if not line.lstrip().startswith("#"))
    used = referenced_variables(body)
    assert sorted(used - set(env_example)) == [], "used in docker-compose.yaml but missing in .env.example"
    assert sorted(set(env_example) - used) == [], "in .env.example but unused by docker-compose.yaml"


def test_env_example_secrets_are_clearly_fake(env_example: dict[str, str]) -> None:
    slack_documented_fake = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    for key, value in env_example.items():
        if is_secret_name(key):
            assert value == "" or "change-me" in value or value == slack_documented_fake, key
    assert "Fernet.generate_key()" in ENV_EXAMPLE.read_text(encoding="utf-8")


def test_init_migrates_the_metadata_db_and_the_ml_schema(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    assert init["command"][:2] == ["bash", "-c"]
    assert "\nairflow db migrate\n" in script
    assert 'python -m feedbackloop.cli migrate --dsn "${FEEDBACK_DB_DSN}"' in script
    env = dict(environment_items(init))
    assert env["FEEDBACK_DB_DSN"].startswith("postgresql://feedback:") and env["FEEDBACK_DB_DSN"].endswith(
        "@feedback-db:5432/feedback"
    )


def test_init_uses_options_the_feedbackloop_cli_has(capsys: pytest.CaptureFixture[str]) -> None:
    from feedbackloop.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["migrate", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert "--dsn" in usage and "--with-app-tables" in usage


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("service", "shell"),
    [pytest.param("airflow-init", "bash", id="init"), pytest.param("minio-init", "sh", id="minio")],
)
def test_one_shot_scripts_are_valid_shell(compose: dict[str, Any], service: str, shell: str) -> None:
    script = compose["services"][service]["command"][-1]
    result = subprocess.run(
        [shutil.which(shell) or shell, "-n", "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_init_writes_the_admin_password_file_as_json_readable_by_owner_only(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    script = compose["services"]["airflow-init"]["command"][-1]
    tail = script[script.index("umask 077") :]
    target = tmp_path / "passwords.json"
    awkward = 'p"w\\d $x'  # quotes, backslash and $ must survive into the JSON intact
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "AIRFLOW_ADMIN_USERNAME": "ops",
        "AIRFLOW_ADMIN_PASSWORD": awkward,
    }
    result = subprocess.run(["bash", "-c", tail], env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text(encoding="utf-8")) == {"ops": awkward}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def _heredoc(script: str, marker: str) -> str:
    """The body of the ``<<'PY'`` heredoc in ``script`` that contains ``marker``."""
    bodies = re.findall(r"<<'PY'\n(.*?)\nPY(?:\n|$)", script, re.S)
    found = [body for body in bodies if marker in body]
    assert len(found) == 1, f"expected one heredoc with {marker!r}, found {len(found)}"
    return found[0]


def _run_connection_check(snippet: str, conn_env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(conn_env)
    return subprocess.run(
        [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_init_checks_that_every_connection_the_dags_use_resolves(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    snippet = _heredoc(script, "get_connection_from_secrets")
    assert (
        script.index("python -m feedbackloop.cli migrate") < script.index(snippet) < script.index("umask 077")
    )
    conn_env = {k: v for k, v in environment_items(init) if k.startswith("AIRFLOW_CONN_")}
    assert set(conn_env) == {f"AIRFLOW_CONN_{c.upper()}" for c in CONNECTIONS}
    # Run the init's check for real against the connections built from .env.example.
    result = _run_connection_check(snippet, conn_env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("connection ")]
    assert lines == [f"connection {c}: {t}" for c, t in CONNECTIONS.items()]
    for secret in ("change-me-feedback-db-password", "change-me-airflow-s3-secret"):
        assert secret not in result.stdout
    # A malformed or missing connection fails the init (so nothing starts on a broken .env).
    broken = {**conn_env, "AIRFLOW_CONN_FEEDBACK_DB": '{"conn_type": "postgres", '}
    assert _run_connection_check(snippet, broken).returncode != 0
    missing = {k: v for k, v in conn_env.items() if k != "AIRFLOW_CONN_SLACK_ALERTS"}
    assert _run_connection_check(snippet, missing).returncode != 0


def test_minio_init_creates_the_staging_bucket_before_airflow_starts(compose: dict[str, Any]) -> None:
    minio_init = compose["services"]["minio-init"]
    script = minio_init["command"][-1]
    env = dict(environment_items(minio_init))
    staging = dict(environment_items(compose["services"]["airflow-worker"]))["FEEDBACKLOOP_STAGING_URI"]
    assert staging == f"s3://{env['STAGING_BUCKET']}/airflow"
    assert 'mc mb --ignore-existing "local/${STAGING_BUCKET}"' in script  # idempotent: runs on every `up`
    assert minio_init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        deps = compose["services"][name]["depends_on"]
        assert deps["minio-init"] == {"condition": "service_completed_successfully"}, name


def test_env_file_is_git_ignored_and_the_example_is_shipped() -> None:
    import fnmatch

    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(fnmatch.fnmatch(".env", p.strip("/")) for p in patterns if not p.startswith("!"))
    assert not any(fnmatch.fnmatch(".env.example", p.strip("/")) for p in patterns if not p.startswith("!"))
    assert ENV_EXAMPLE.is_file()


def test_workers_exchange_artifacts_only_through_s3_staging(compose: dict[str, Any]) -> None:
    worker = compose["services"]["airflow-worker"]
    env = dict(environment_items(worker))
    assert env["FEEDBACKLOOP_STAGING_URI"].startswith("s3://")
    writable = [v for v in worker["volumes"] if isinstance(v, str) and not v.endswith(":ro")]
    # The only writable mount is the task-log volume; no data folder is shared between workers.
    assert writable == ["airflow-logs:/opt/airflow/logs"], writable


def test_make_cluster_runs_the_same_topology_as_compose(compose: dict[str, Any]) -> None:
    """``make cluster`` (feedbackloop.cluster) is this stack without Docker: same Airflow
    components, same executor, default worker count and staging location; loopback only."""
    from urllib.parse import urlparse

    from feedbackloop import cluster

    commands = cluster.airflow_commands(api_port=8080)
    for name, command in AIRFLOW_SERVICES.items():
        if command is None:
            continue
        words = command.split()
        assert any(argv[: len(words)] == words for argv in commands.values()), (name, command)
    replicas = int(compose["services"]["airflow-worker"]["deploy"]["replicas"])
    assert sum(n.startswith("worker-") for n in commands) == replicas == cluster.DEFAULT_WORKERS
    compose_env = dict(environment_items(compose["services"]["airflow-worker"]))
    cfg = {
        "airflow_home": "/tmp/h",
        "pg_port": 5,
        "api_port": 8080,
        "api_url": "http://127.0.0.1:8080",
        "passwords_file": "/tmp/p.json",
        "redis_port": 6,
        "worker_concurrency": 2,
        "s3_endpoint": "http://127.0.0.1:7",
        "s3_bucket": cluster.STAGING_BUCKET,
        "s3_access_key": "k",
        "s3_secret_key": "s",
    }
    secret = dict.fromkeys(("fernet_key", "jwt_secret", "api_secret_key", "redis_password"), "x")
    env = cluster.airflow_env(cfg, secret)
    for key in ("AIRFLOW__CORE__EXECUTOR", "FEEDBACKLOOP_STAGING_URI", "AIRFLOW__CORE__AUTH_MANAGER"):
        assert env[key] == compose_env[key], key
    assert {f"AIRFLOW_CONN_{c.upper()}" for c in CONNECTIONS} - set(env) <= {
        "AIRFLOW_CONN_OPENAI_DEFAULT",
        "AIRFLOW_CONN_SLACK_ALERTS",  # optional locally
    }
    # Every URL a cluster process is given points at 127.0.0.1 (s3:// names the bucket, not a host).
    urls = [v for v in env.values() if "://" in v and not v.startswith(("s3://", "{"))]
    urls.append(json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"])
    hosts = {urlparse(u.removeprefix("db+")).hostname for u in urls}
    assert hosts == {"127.0.0.1"}, urls
    assert (
        "--host" in commands["api-server"]
        and commands["api-server"][commands["api-server"].index("--host") + 1] == "127.0.0.1"
    )


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_on_the_pinned_airflow_with_constraints() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG AIRFLOW_BASE_IMAGE=(\S+)$", text, re.M)
    assert base and base.group(1) == "apache/airflow:3.3.2-python3.11"
    assert re.search(r"^FROM \$\{AIRFLOW_BASE_IMAGE\}$", text, re.M)
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned and pinned.group(1) == "3.3.2", "image tag and requirements.txt must pin the same Airflow"
    assert re.search(r"pip install .*-r /opt/airflow/requirements.txt -c /opt/airflow/constraints.txt", text)
    assert re.search(r"pip install .*--no-deps -e /opt/airflow", text)
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for item in source.split():
            assert "[" in item or (ROOT / item).exists(), f"COPY source {item} does not exist"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert {".env", ".venv", ".git", ".state", "**/*.egg-info"} <= ignored
    assert not ignored & {"include", "dags", "plugins", "golden_set", "expectations", "requirements.txt"}


# --------------------------------------------------------------------------- rules can fail


def _with(compose: dict[str, Any], service: str, key: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(compose)
    changed["services"][service][key] = value
    return changed


@pytest.mark.parametrize(
    ("ports", "violates"),
    [
        pytest.param(["8080:8080"], True, id="all-interfaces"),
        pytest.param(["0.0.0.0:8080:8080"], True, id="explicit-any"),
        pytest.param([8080], True, id="bare-container-port"),
        pytest.param(["8080"], True, id="bare-container-port-string"),
        pytest.param(["[::]:8080:8080/tcp"], True, id="ipv6-any"),
        pytest.param([{"target": 8080, "published": "8080"}], True, id="long-syntax-no-host-ip"),
        pytest.param(
            [{"target": 8080, "published": "8080", "host_ip": "127.0.0.1"}], False, id="long-loopback"
        ),
        pytest.param(["127.0.0.1:9000-9001:9000-9001/tcp"], False, id="loopback-range"),
    ],
)
def test_port_rule(compose: dict[str, Any], ports: list[Any], violates: bool) -> None:
    found = published_port_violations(_with(compose, "airflow-apiserver", "ports", ports))
    assert bool(found) is violates, found


def test_port_rule_rejects_host_network(compose: dict[str, Any]) -> None:
    assert published_port_violations(_with(compose, "redis", "network_mode", "host"))


@pytest.mark.parametrize(
    ("environment", "violates"),
    [
        pytest.param({"POSTGRES_PASSWORD": "airflow"}, True, id="literal-password"),
        pytest.param({"POSTGRES_PASSWORD": "${AIRFLOW_DB_PASSWORD:-airflow}"}, True, id="literal-default"),
        pytest.param(["POSTGRES_PASSWORD=airflow"], True, id="list-form"),
        pytest.param({"OPENAI_API_KEY": "sk-test"}, True, id="api-key"),
        pytest.param({"SLACK_WEBHOOK": "https://hooks.slack.com/x"}, True, id="webhook"),
        pytest.param({"DB": "postgresql://u:hunter2@db/x"}, True, id="password-in-url"),
        pytest.param({"DB": "postgresql://u:${PW:-hunter2}@db/x"}, True, id="url-default"),
        pytest.param(
            {"AIRFLOW_CONN_X": '{"conn_type": "postgres", "password": "hunter2"}'}, True, id="conn-json"
        ),
        pytest.param({"AIRFLOW_CONN_X": '{"extra": {"api_key": "k"}}'}, True, id="conn-json-extra"),
        pytest.param({"AIRFLOW_CONN_X": "{not json"}, True, id="conn-not-json"),
        pytest.param({"POSTGRES_PASSWORD": "${PW}"}, False, id="reference"),
        pytest.param({"POSTGRES_PASSWORD": "${PW:?set it in .env}"}, False, id="required-reference"),
        pytest.param({"OPENAI_API_KEY": "${K:-}"}, False, id="empty-default"),
        pytest.param({"SECRET_FILE": "/run/secrets/pw"}, False, id="file-path-is-not-a-secret"),
        pytest.param({"DB": "postgresql://u:${PW:?x y}@db/x"}, False, id="url-reference"),
    ],
)
def test_secret_rule(raw_compose: dict[str, Any], environment: Any, violates: bool) -> None:
    found = literal_secret_violations(_with(raw_compose, "postgres", "environment", environment))
    assert bool(found) is violates, found


def test_secret_rule_also_checks_the_shared_anchor(raw_compose: dict[str, Any]) -> None:
    changed = copy.deepcopy(raw_compose)
    changed["x-airflow-common"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] = "literal-key"
    assert literal_secret_violations(changed)


@pytest.mark.parametrize(
    "healthcheck",
    [
        pytest.param(None, id="missing"),
        pytest.param({"disable": True}, id="disabled"),
        pytest.param({"test": ["NONE"]}, id="none"),
    ],
)
def test_healthcheck_rule(compose: dict[str, Any], healthcheck: Any) -> None:
    changed = _with(compose, "airflow-scheduler", "healthcheck", healthcheck)
    assert healthcheck_violations(changed, ONE_SHOT_SERVICES) == ["airflow-scheduler: no healthcheck"]


@pytest.mark.parametrize(
    ("depends_on", "fragment"),
    [
        pytest.param(["redis"], "without conditions", id="short-form"),
        pytest.param({"redis": {"condition": "service_started"}}, "healthy", id="started-only"),
        pytest.param({"airflow-init": {"condition": "service_healthy"}}, "complete", id="one-shot-health"),
        pytest.param({"nope": {"condition": "service_healthy"}}, "unknown", id="unknown"),
    ],
)
def test_dependency_rule(compose: dict[str, Any], depends_on: Any, fragment: str) -> None:
    found = dependency_violations(
        _with(compose, "airflow-triggerer", "depends_on", depends_on), ONE_SHOT_SERVICES
    )
    assert len(found) == 1 and fragment in found[0], found


def test_undefined_variable_is_reported(compose_text: str, env_example: dict[str, str]) -> None:
    assert referenced_variables(compose_text + "\nx: ${BRAND_NEW_VAR:-1}\n") - set(env_example) >= {
        "BRAND_NEW_VAR"
    }
