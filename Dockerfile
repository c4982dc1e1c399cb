# revoker: token revocation service.
#   docker build -t revoker .
#   docker run -p 8080:8080 -e REVOKER_STORE_URL=redis://redis:6379/0 -e REVOKER_API_KEYS=... revoker
# Two stages: wheels are built in the first (which may hold a compiler for packages without
# a binary wheel); the final image holds only the virtualenv, no compiler and no pip cache.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/revoker
WORKDIR /src
COPY pyproject.toml README.md ./
COPY revoker ./revoker
RUN /opt/revoker/bin/pip install ".[fast]" \
 && /opt/revoker/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 revoker \
 && useradd --system --uid 10001 --gid revoker --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin revoker
COPY --from=build /opt/revoker /opt/revoker
ENV PATH=/opt/revoker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REVOKER_HOST=0.0.0.0 \
    REVOKER_PORT=8080 \
    REVOKER_LOG_FORMAT=json
# Several workers keep their metrics in a fresh directory under $TMPDIR: with a read-only
# root filesystem, mount a writable (tmpfs/emptyDir) volume at /tmp.
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('REVOKER_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["revoker"]
CMD ["serve"]
