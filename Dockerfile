# The one image every revsync service runs: `revsync gateway`, `revsync worker QUEUE`,
# `revsync temporal setup`, `revsync sandbox` (docker-compose.yml picks the command).
#
# Two stages on the same pinned base: `build` installs revsync and its dependencies into a
# virtual environment; `runtime` copies only that environment, with no compiler, no pip cache
# and no source tree, and runs as an unprivileged user. Bump the base deliberately (a new
# tag, rebuilt and tested), never by pulling a moving tag.

FROM python:3.12.7-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/revsync
WORKDIR /src
# Metadata first: the dependency layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir revsync domain workflows activities adapters workers sandbox \
    && touch revsync/__init__.py \
    && /opt/revsync/bin/pip install . \
    && /opt/revsync/bin/pip uninstall --yes revsync
COPY revsync ./revsync
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY adapters ./adapters
COPY workers ./workers
COPY sandbox ./sandbox
RUN /opt/revsync/bin/pip install --no-deps . \
    && /opt/revsync/bin/python -m compileall -q /opt/revsync/lib


FROM python:3.12.7-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 revsync \
    && useradd --system --uid 10001 --gid revsync --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin revsync

COPY --from=build /opt/revsync /opt/revsync
# Reconciliation's report store: a volume mounted here starts owned by revsync.
RUN mkdir -p /var/lib/revsync/reconciliation && chown -R revsync:revsync /var/lib/revsync

ENV PATH=/opt/revsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REVSYNC_LOG_FORMAT=json

# An empty working directory: revsync reads `.env` from here, and the image carries none
# (settings come from the environment, docker-compose.yml's env_file or the orchestrator).
WORKDIR /app
USER revsync:revsync

# Workers drain on SIGTERM (REVSYNC_WORKER_SHUTDOWN_GRACE_SECONDS): give them longer than that
# before the runtime kills them (compose: stop_grace_period; Kubernetes:
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
EXPOSE 8000 8100
ENTRYPOINT ["revsync"]
CMD ["--help"]
