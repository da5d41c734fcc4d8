# syntax=docker/dockerfile:1
#
# One image for every Ticketing component. The command picks the component:
#   docker run IMAGE run auth|tickets|orders|expiration|payments|confirmation|gateway|frontend
#   docker run IMAGE migrate            (apply every service's migrations, then exit)
# gateway and frontend are served by gunicorn on :8000 (ticketing/web.py; WEB_WORKERS, WEB_THREADS).
# See docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: resolve and install the project into a self-contained venv ----
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the distribution is built from (see .dockerignore): tests, charts and
# docs stay out of the image.
COPY pyproject.toml README.md ./
COPY ticketing ./ticketing
COPY services ./services
COPY gateway ./gateway
COPY frontend ./frontend

# A regular (non-editable) install: the venv holds the code, its templates,
# static files and migrations, and nothing points back at /src.
# Byte-compile now: the runtime filesystem is read-only.
RUN pip install --no-compile . \
 && python -m compileall -q /opt/venv/lib \
 && pip uninstall -y pip

# ---- runtime ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ticketing" \
      org.opencontainers.image.description="Ticket-resale marketplace: Nameko services, Flask gateway and frontend" \
      org.opencontainers.image.source="https://example.invalid/ticketing"

# PSYCOPG_WAIT_FUNC: psycopg 3 must wait through select() or it blocks
# eventlet's hub. VAR_DIR/MAIL_OUTBOX_DIR: the only writable
# paths besides /tmp (the chart mounts emptyDirs there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PSYCOPG_WAIT_FUNC=wait_select \
    HOST=0.0.0.0 \
    PORT=8000 \
    HEALTH_PORT=8000 \
    VAR_DIR=/var/lib/ticketing \
    MAIL_OUTBOX_DIR=/var/lib/ticketing/mail

# A fixed numeric uid so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 ticketing \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin ticketing \
 && mkdir -p /app /var/lib/ticketing/mail \
 && chown -R 10001:10001 /var/lib/ticketing

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# nameko shell's config for operators (`nameko shell --config /app/config.yaml`).
# The bracket glob keeps the build working before config.yaml exists.
COPY pyproject.toml config.yam[l] ./

USER 10001:10001
EXPOSE 8000

ENTRYPOINT ["ticketing"]
CMD ["run", "gateway"]
