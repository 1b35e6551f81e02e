"""The production stack's files agree with the code: every worker queue has a scalable,
limited service, the sandbox stays out of production, every REVSYNC_ variable is a real
setting, `.env.example` lists exactly the settings, and the image is pinned and unprivileged.
(`docker-compose config` validating the file against the compose schema is in .ci/run.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from domain.contracts import TaskQueue
from revsync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"REVSYNC_{name.upper()}" for name in Settings.model_fields}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}; `$$` is a literal dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(compose_text)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def resolve(value: object) -> str:
    """A compose value with each ``${VAR:-default}`` replaced by its default (none: empty)."""
    return INTERPOLATION.sub(lambda m: m.group(3) or "", str(value))


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def env_example() -> list[tuple[int, str, str]]:
    """(line number, name, value) of every variable line of .env.example, commented or not."""
    rows = []
    for number, line in enumerate((ROOT / ".env.example").read_text().splitlines()):
        match = ENV_LINE.match(line)
        if match:
            rows.append((number, match.group(1), match.group(2)))
    return rows


# ---- workers --------------------------------------------------------------------------------


def test_every_queue_has_one_worker_service_with_replicas_and_limits(services):
    workers = {
        name: service for name, service in services.items() if command(service)[:1] == ["worker"]
    }
    by_queue = {command(service)[1]: name for name, service in workers.items()}
    assert sorted(by_queue) == sorted(TaskQueue.ALL)
    assert len(workers) == len(TaskQueue.ALL), "one service per queue"
    for name, service in workers.items():
        deploy = service.get("deploy") or {}
        assert "replicas" in deploy, f"{name} has no deploy.replicas"
        assert int(resolve(deploy["replicas"])) >= 1, name
        limits = (deploy.get("resources") or {}).get("limits") or {}
        assert float(resolve(limits.get("cpus", 0))) > 0, f"{name} has no CPU limit"
        assert re.fullmatch(r"\d+[MG]", resolve(limits.get("memory", ""))), (
            f"{name} has no memory limit"
        )


def test_workers_get_longer_to_stop_than_their_graceful_shutdown(services):
    """Compose kills a container stop_grace_period after SIGTERM; a worker must have drained
    its in-flight activities (REVSYNC_WORKER_SHUTDOWN_GRACE_SECONDS) before that."""
    grace = Settings.model_fields["worker_shutdown_grace_seconds"].default
    for name, service in services.items():
        if command(service)[:1] != ["worker"]:
            continue
        match = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "")))
        assert match, f"{name} keeps compose's 10 s default stop timeout"
        assert int(match.group(1)) > grace, name


def test_default_erp_concurrency_fits_netsuites_base_account_limit(services):
    """Replicas multiply per-worker concurrency; NetSuite governs the sum (5 without
    SuiteCloud Plus licences)."""
    (erp,) = [s for s in services.values() if command(s) == ["worker", "erp"]]
    replicas = int(resolve(erp["deploy"]["replicas"]))
    per_worker = Settings.model_fields["erp_max_concurrent_activities"].default
    assert replicas * per_worker <= 5


def test_every_revsync_service_runs_the_revsync_image_and_waits_for_temporal_setup(services):
    revsync = {n: s for n, s in services.items() if "revsync" in resolve(s.get("image", ""))}
    assert {"gateway", "temporal-setup", "sandbox"} <= set(revsync)
    assert command(services["temporal-setup"]) == ["temporal", "setup"]
    for name, service in revsync.items():
        if name in ("temporal-setup", "sandbox"):
            continue
        condition = service["depends_on"]["temporal-setup"]["condition"]
        assert condition == "service_completed_successfully", name


# ---- sandbox --------------------------------------------------------------------------------


def test_the_sandbox_runs_only_in_its_profile_and_nothing_needs_it(services):
    sandbox = [name for name, s in services.items() if command(s) == ["sandbox"]]
    assert sandbox == ["sandbox"]
    assert services["sandbox"].get("profiles") == ["sandbox"]
    for name, service in services.items():
        if name == "sandbox":
            continue
        assert not service.get("profiles"), f"{name} would be off in production"
        assert "sandbox" not in (service.get("depends_on") or {}), name


# ---- settings -------------------------------------------------------------------------------


def test_every_revsync_variable_the_compose_file_sets_or_reads_is_a_setting(services, compose_text):
    named = {key for s in services.values() for key in environment(s) if key.startswith("REVSYNC_")}
    named |= {
        m.group(1) for m in INTERPOLATION.finditer(compose_text) if m.group(1).startswith("REVSYNC")
    }
    assert named, "the compose file configures revsync through REVSYNC_ variables"
    assert named - SETTINGS == set(), "not revsync settings"


def test_every_other_variable_the_compose_file_reads_is_in_env_example(compose_text):
    read = {m.group(1) for m in INTERPOLATION.finditer(compose_text)}
    listed = {name for _, name, _ in env_example()}
    assert {v for v in read if not v.startswith("REVSYNC_")} - listed == set()


def test_env_example_names_exactly_the_settings_each_explained_and_no_secret_filled():
    rows = env_example()
    named = [name for _, name, _ in rows if name.startswith("REVSYNC_")]
    assert len(named) == len(set(named)), "a setting listed twice"
    assert SETTINGS - set(named) == set(), "settings missing from .env.example"
    assert set(named) - SETTINGS == set(), ".env.example names settings that do not exist"

    lines = (ROOT / ".env.example").read_text().splitlines()
    secrets = {
        f"REVSYNC_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    }
    assert secrets, "Settings has SecretStr fields"
    for number, name, value in rows:
        if not name.startswith("REVSYNC_"):
            continue
        above = lines[number - 1]
        assert above.startswith("#") and not ENV_LINE.match(above), (
            f"{name} has no line saying what it is"
        )
        if name in secrets:
            assert value == "", f"{name} is a secret: leave it empty in .env.example"


# ---- images ---------------------------------------------------------------------------------


def pinned(image: str) -> bool:
    name, _, tag = image.partition("@")[0].rpartition(":")
    return "@sha256:" in image or (bool(name) and tag not in ("", "latest") and "/" not in tag)


def test_every_third_party_image_is_pinned(services):
    for name, service in services.items():
        image = resolve(service.get("image", ""))
        if image == "revsync:local":
            assert "build" in service, f"{name} runs the local image without building it"
            continue
        assert pinned(image), f"{name}: {image!r} is not pinned to a version"


def test_temporal_persists_and_indexes_in_postgresql(services):
    server = environment(services["temporal"])
    assert server["DB"] == "postgres12"
    assert server["POSTGRES_SEEDS"] == "postgresql"
    assert resolve(services["temporal-schema"]["image"]).startswith("temporalio/admin-tools:")
    assert environment(services["temporal-schema"])["SQL_PLUGIN"] == "postgres12"
    schema_script = " ".join(command(services["temporal-schema"]))
    assert "postgresql/v12/$$db/versioned" in schema_script


def test_the_web_ui_decodes_through_the_gateway_codec_server(services):
    ui = environment(services["temporal-ui"])
    endpoint = resolve(ui["TEMPORAL_CODEC_ENDPOINT"])
    gateway_ports = [str(p) for p in services["gateway"]["ports"]]
    port = environment(services["gateway"])["REVSYNC_GATEWAY_PORT"]
    assert endpoint == f"http://localhost:{port}/codec"
    assert f"{port}:{port}" in gateway_ports
    assert "/t/" not in endpoint, "a token in the cluster-wide endpoint is shared by every user"


def dockerfile_stages() -> list[tuple[str, str | None, list[str]]]:
    """(base image, stage name, instructions) per stage of the Dockerfile."""
    stages: list[tuple[str, str | None, list[str]]] = []
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0].upper() == "FROM":
            alias = parts[3] if len(parts) >= 4 and parts[2].upper() == "AS" else None
            stages.append((parts[1], alias, []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def test_the_dockerfile_is_multi_stage_pinned_and_runs_unprivileged():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: the runtime stage carries no build tooling"
    earlier: set[str] = set()
    for base, alias, _ in stages:
        assert base in earlier or pinned(base), f"FROM {base} is not pinned"
        if alias:
            earlier.add(alias)
    final = stages[-1][2]
    users = [line.split()[1] for line in final if line.split()[0].upper() == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(line.startswith("COPY --from=") for line in final)
    assert not any(line.split()[0].upper() == "RUN" and "pip install" in line for line in final)
