# syntax=docker/dockerfile:1
#
# Multi-stage build: the builder turns the source into wheels (the project's and its
# dependencies'), the final stage installs only those wheels, so no build tools, source tree or
# pip cache end up in the image. Nothing here depends on the CPU architecture: every dependency
# ships wheels for amd64 and arm64, so `docker buildx build --platform linux/amd64,linux/arm64 .`
# works as is.
#
# Pin by digest too (python:3.11.14-slim-bookworm@sha256:...) in your own release pipeline when
# you need bit-for-bit reproducible builds; the tag alone keeps receiving Debian security fixes.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from: a change to tests or docs does not invalidate this layer. The rules and
# dashboards go into the package (`isolarcloud-exporter assets`), the licence into its metadata.
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
COPY prometheus ./prometheus
COPY grafana/dashboards ./grafana/dashboards
COPY grafana/provisioning ./grafana/provisioning

RUN pip wheel --no-cache-dir --wheel-dir /wheels .


FROM ${PYTHON_IMAGE}

# OCI annotations. A release build passes what only it knows:
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" --build-arg SOURCE_URL=https://... .
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=
LABEL org.opencontainers.image.title="isolarcloud-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the Sungrow iSolarCloud cloud API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid so that bind-mounted state directories and secret files can be chowned to it
# on the host (chown 10001 ...) and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 isolarcloud \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/isolarcloud-exporter --shell /usr/sbin/nologin isolarcloud \
    && mkdir -p /etc/isolarcloud-exporter /var/lib/isolarcloud-exporter \
    && chown 10001:10001 /var/lib/isolarcloud-exporter \
    && chmod 0750 /var/lib/isolarcloud-exporter

# A bind mount instead of COPY keeps the wheels out of every image layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links=/tmp/wheels /tmp/wheels/isolarcloud_exporter-*.whl

# The refresh token of an OAuth2 account is rotated by the cloud and written to a token file:
# it must survive container restarts, so it lives on a volume (token_file: under this path).
VOLUME ["/var/lib/isolarcloud-exporter"]
WORKDIR /var/lib/isolarcloud-exporter

USER 10001:10001
EXPOSE 10027

# The slim image has no curl; the interpreter is there anyway. Override HEALTHCHECK_URL when
# you change --web.listen-address, or disable the check (--no-healthcheck) when
# --web.config.file enables TLS or basic auth.
ENV HEALTHCHECK_URL=http://127.0.0.1:10027/-/healthy
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["isolarcloud-exporter"]
CMD ["--config.file=/etc/isolarcloud-exporter/config.yaml", "--web.listen-address=:10027"]
