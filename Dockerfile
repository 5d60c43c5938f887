# syntax=docker/dockerfile:1
# One image for every FlashSale component: `flashsale api|worker|reap|sweep|migrate|operator`.

# Build stage: install the package and its core dependencies into a virtualenv, no extras:
# not `local` (embedded Redis and PostgreSQL), `demo`, `bench`, `test` or `lint`.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/flashsale
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flashsale ./flashsale
RUN /opt/flashsale/bin/pip install --upgrade pip \
 && /opt/flashsale/bin/pip install .

# Runtime stage: the virtualenv (same path, its scripts point there) and a non-root user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 flashsale \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/flashsale --create-home flashsale
COPY --from=build /opt/flashsale /opt/flashsale
ENV PATH=/opt/flashsale/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/flashsale
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["flashsale"]
CMD ["--help"]
