"""The Dockerfile, read as Docker reads it (no `docker build` here): stages, user, health, entry."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

from setuptools import find_packages

from bot.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        command, _, args = line.partition(" ")
        result.append((command.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for command, args in instructions():
        if command == "FROM":
            found.append([])
        if found:
            found[-1].append((command, args))
    return found


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def _args() -> dict[str, str]:
    values = {}
    for command, args in instructions():
        if command == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            values[name] = value
    return values


def _base(from_args: str) -> str:
    image = from_args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: _args()[m.group(1)], image)


def test_it_is_multi_stage_on_slim_python_3_11() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", _base(stage[0][1]))
    copies = [args for command, args in final_stage() if command == "COPY"]
    assert any(args.startswith("--from=build /opt/icbot ") for args in copies)


def test_the_final_image_runs_as_a_numeric_non_root_user() -> None:
    users = [args for command, args in final_stage() if command == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    # Nothing after USER switches back.
    after = final_stage()[[c for c, _ in final_stage()].index("USER") :]
    assert not any(c == "USER" and a.split(":")[0] in ("0", "root") for c, a in after)


def test_entry_point_is_icbot_serve_in_exec_form() -> None:
    final = dict(final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["icbot"]
    assert json.loads(final["CMD"]) == ["serve"]


def test_healthcheck_asks_healthz_on_port() -> None:
    final = dict(final_stage())
    check = final["HEALTHCHECK"]
    assert "/healthz" in check and "PORT" in check
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and argv[1] == "-c"
    compile(argv[2], "<healthcheck>", "exec")  # the probe is valid Python


def test_it_listens_on_port_with_the_settings_default() -> None:
    final = final_stage()
    env = " ".join(args for command, args in final if command == "ENV")
    default = Settings.model_fields["port"].default
    assert re.search(rf"\bPORT={default}\b", env)
    assert (("EXPOSE", str(default))) in final


def test_no_build_tools_or_caches_end_up_in_the_image() -> None:
    final_runs = " ".join(args for command, args in final_stage() if command == "RUN")
    for tool in ("gcc", "build-essential", "make ", "pip install", "apt-get install", "git "):
        assert tool not in final_runs, tool
    build_runs = " ".join(args for stage in stages()[:-1] for c, args in stage if c == "RUN")
    assert "pip install --no-cache-dir" in build_runs
    assert "uninstall --yes pip setuptools" in build_runs
    assert "PIP_NO_CACHE_DIR=1" in " ".join(a for c, a in stages()[0] if c == "ENV")


def test_every_copied_path_is_in_the_repository() -> None:
    for stage in stages():
        for command, args in stage:
            if command not in ("COPY", "ADD") or args.startswith("--from="):
                continue
            *sources, _ = shlex.split(" ".join(a for a in args.split() if not a.startswith("--")))
            for source in sources:
                assert (REPO / source).exists(), f"{command} {source}: not in the repository"
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "bot", "commands", "playbooks"):
        assert needed not in ignored


def test_playbooks_are_where_playbooks_dir_points() -> None:
    final = final_stage()
    env = " ".join(args for command, args in final if command == "ENV")
    match = re.search(r"\bPLAYBOOKS_DIR=(\S+)", env)
    assert match
    assert ("COPY", f"playbooks {match.group(1)}") in final
    assert (REPO / "playbooks" / "severities.yml").exists()


def test_the_installed_package_has_every_module_and_the_migrations() -> None:
    """What `pip install .` in the build stage installs (the source tree is not in the image).

    setuptools' package discovery with pyproject's `include` patterns must find every directory
    that holds Python modules, and package-data must carry the SQL migrations start-up applies.
    """
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = data["tool"]["setuptools"]
    found = set(find_packages(str(REPO), include=tool["packages"]["find"]["include"]))
    holding_code = {
        ".".join(p.parent.relative_to(REPO).parts)
        for root in ("bot", "commands")
        for p in (REPO / root).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert holding_code <= found, f"not packages (no __init__.py?): {holding_code - found}"
    migrations = sorted((REPO / "bot" / "store" / "migrations").glob("*.sql"))
    patterns = tool["package-data"]["bot.store"]
    assert migrations and all(
        any(m.relative_to(REPO / "bot" / "store").match(p) for p in patterns) for m in migrations
    )
    assert data["project"]["scripts"]["icbot"] == "bot.cli:main"
