# icbot: `icbot serve` on port 3000. Needs DATABASE_URL (a real PostgreSQL) in production.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY playbooks ./playbooks
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 icbot
COPY --from=build /install /usr/local
COPY playbooks /app/playbooks
ENV PLAYBOOKS_DIR=/app/playbooks PORT=3000 LOG_FORMAT=json PYTHONUNBUFFERED=1
USER icbot
WORKDIR /app
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz').status == 200 else 1)"
ENTRYPOINT ["icbot"]
CMD ["serve"]
