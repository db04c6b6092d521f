# RMC Dialler image: one image for every process (web, migrations, seeding, later the workers).
#
#   docker build -t rmc-dialler:local .
#   docker run --rm -p 8000:8000 --env-file .env rmc-dialler:local            # dialler web
#   docker run --rm --env-file .env rmc-dialler:local dialler db upgrade
#
# Stages: `web-assets` installs the npm front-end libraries, `python-build` builds a virtualenv
# with the project installed, `runtime` is a slim image running as a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim


# --- 1. Front-end libraries from npm (htmx, Twilio Voice SDK, swagger-ui-dist, ...) -----------
FROM ${NODE_IMAGE} AS web-assets
WORKDIR /build
# package.json / package-lock.json are optional. pyproject.toml always exists and is only listed
# so that the COPY matches at least one file: the classic builder rejects a COPY whose wildcards
# all match nothing (BuildKit allows it).
COPY pyproject.toml package*.json ./
# --ignore-scripts: browser libraries need no install hooks, and hooks would fetch from the network.
RUN set -eu; \
    if [ -f package-lock.json ]; then \
        npm ci --ignore-scripts --no-audit --no-fund; \
    elif [ -f package.json ]; then \
        echo "WARNING: package-lock.json missing; falling back to npm install" >&2; \
        npm install --ignore-scripts --no-audit --no-fund --no-package-lock; \
    else \
        echo "no package.json: shipping an empty node_modules"; \
    fi; \
    mkdir -p node_modules


# --- 2. Python virtualenv with the project installed -----------------------------------------
FROM ${PYTHON_IMAGE} AS python-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Every pinned dependency ships manylinux wheels for CPython 3.11, so no compiler is installed.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# Then the project itself (provides the `dialler` console script).
COPY . .
# Bytecode compiled at build time: the code is read-only at run time, and the workflow
# sandbox re-imports workflow modules for every workflow instance (workers/outreach.py).
RUN python -m compileall -q /app/workflows /app/activities /app/domain /app/schemas \
    /app/adapters /app/services /app/workers /app/web /app/config /app/cli
RUN pip install -c constraints.txt .


# --- 3. Runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# PYTHONPATH=/app: the packages are imported from the source tree at /app (the same code as the
# copy installed in the venv, which provides the `dialler` entry point), so files beside them
# such as alembic.ini and node_modules are found where the app looks for them.
# WEB_HOST=0.0.0.0: the settings default (127.0.0.1) would be unreachable from outside the container.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8000

RUN groupadd --system --gid 10001 dialler \
    && useradd --system --uid 10001 --gid dialler --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin dialler

WORKDIR /app
COPY --from=python-build /opt/venv /opt/venv
# Web assets are served from /app/node_modules.
COPY --from=web-assets /build/node_modules ./node_modules
COPY . .

# Code stays root-owned (read-only for the app); only the local state directory (.dev, which holds
# the email outbox when SendGrid is not configured) is writable.
RUN mkdir -p /app/.dev/outbox && chown -R 10001:10001 /app/.dev

# Numeric so that orchestrators enforcing runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000
CMD ["dialler", "web"]
