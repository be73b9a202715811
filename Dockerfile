# icbot: the incident-response bot, `icbot serve` on $PORT (3000).
#
#   docker build -t icbot .
#   docker run -e DATABASE_URL=postgresql://... -e SLACK_BOT_TOKEN=... \
#              -e SLACK_SIGNING_SECRET=... -p 3000:3000 icbot          # or: icbot socket
#
# Two stages. `build` installs the project and its dependencies (binary wheels: no compiler is
# needed) into a virtualenv at /opt/icbot, then removes pip and setuptools from it. The runtime
# stage is a fresh slim Python 3.11 with only that virtualenv and the bundled playbooks: no build
# tools, no pip cache, no source tree, no tests. It runs as the unprivileged user 10001 (numeric,
# so Kubernetes' runAsNonRoot can verify it) and needs no writable path except a temp dir.
#
# Image contents (see deploy/README.md):
#   /opt/icbot             virtualenv: the icbot package (bot, commands, SQL migrations) + deps
#                          (no extras: no sandbox/ stand-ins, no tansu or OpenBao binaries)
#   /app/playbooks         the bundled playbooks and policy files (PLAYBOOKS_DIR; mount a
#                          ConfigMap here to use your own)
#   /home/icbot            the user's home: only used by the embedded-PostgreSQL fallback
#                          (no DATABASE_URL), which is for trials, not production

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/icbot
# Only what the package is built from (pyproject's readme is README.md).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
RUN /opt/icbot/bin/pip install --no-cache-dir . \
    && /opt/icbot/bin/python -m pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="icbot" \
      org.opencontainers.image.description="Incident-response ChatOps bot for Slack"
RUN groupadd --system --gid 10001 icbot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/icbot --create-home \
       --shell /usr/sbin/nologin icbot
COPY --from=build /opt/icbot /opt/icbot
COPY playbooks /app/playbooks
ENV PATH=/opt/icbot/bin:$PATH \
    PLAYBOOKS_DIR=/app/playbooks \
    PORT=3000 \
    LOG_FORMAT=json \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# Liveness of `icbot serve` (and `icbot socket`, which serves /healthz on PORT too).
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:' + (os.getenv('PORT') or '3000') + '/healthz'; sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]
# SIGTERM drains in-flight work (SHUTDOWN_GRACE_SECONDS) and exits 0; exec form, so icbot is
# PID 1 and receives it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["icbot"]
CMD ["serve"]
