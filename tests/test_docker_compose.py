"""docker-compose.yml and the Dockerfile cannot be run here (no Docker); check that they load and hang together."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_five_services_with_health_checked_dependencies():
    services = compose()["services"]
    assert set(services) == {"elasticsearch", "redis", "postgres", "web", "worker"}
    for name in ("web", "worker"):
        assert set(services[name]["depends_on"]) == {"postgres", "redis", "elasticsearch"}
        assert all(dep in services and "healthcheck" in services[dep] for dep in services[name]["depends_on"])


def test_web_and_worker_get_the_integration_variables():
    services = compose()["services"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert env["DATABASE_URL"].startswith("postgres://shop:shop@postgres:5432/")
    assert services["worker"]["command"].startswith("celery -A workers worker -B")


def test_elasticsearch_is_a_single_local_node_with_a_sized_heap():
    es = compose()["services"]["elasticsearch"]
    assert es["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:9.")
    assert es["environment"]["discovery.type"] == "single-node"
    assert es["environment"]["xpack.security.enabled"] == "false"
    assert "-Xms1g -Xmx1g" in es["environment"]["ES_JAVA_OPTS"]
    assert es["ports"] == ["127.0.0.1:9200:9200"]


def test_dockerfile_installs_the_project_with_its_deploy_extras():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile
    assert 'pip install ".[deploy]"' in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"gunicorn==' in pyproject and '"psycopg[binary]==' in pyproject  # gunicorn in deploy, psycopg in the main deps


def test_compose_runs_the_demo_settings_with_debug_off():
    # DEBUG on shows tracebacks and local paths to anyone who reaches the port
    for name in ("web", "worker"):
        env = compose()["services"][name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.demo"
        assert "DEBUG" not in env
