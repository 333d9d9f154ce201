# callbot as a container: the wheel built from this checkout, installed over the pinned,
# hash-checked requirements.txt (regenerate it with ./dev lock). tests/test_wheel_install.py
# runs the same install steps in a fresh venv.
#
#   docker build -t callbot .
#   docker run --rm -p 3000:3000 --env-file .env -v callbot-data:/data callbot          # serve
#   docker run --rm --env-file .env -v callbot-data:/data callbot callbot migrate        # or any command
#
# SQLite (the default, ./callbot.db) lives in /data, the working directory: keep it on a volume.
# With DATABASE_URL=postgresql://… run `callbot migrate` before serving (docker-compose.yml does).

ARG PYTHON_VERSION=3.11

# -- build: the wheel (bot/ with the migrations inside it as bot/migrations) --------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip wheel --no-deps --wheel-dir /dist .

# -- runtime: the pinned dependencies, then the wheel; no source tree -----------------------------
FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=3000
COPY requirements.txt /tmp/requirements.txt
RUN pip install --require-hashes -r /tmp/requirements.txt
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist /tmp/requirements.txt \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin callbot \
    && mkdir /data && chown callbot:callbot /data
USER callbot
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)" || exit 1
CMD ["callbot", "serve"]
