# syntax=docker/dockerfile:1.7
# Two targets from one project:
#   api    - FastAPI server, no torch (the API never imports torch/molrg/workers)
#   worker - Celery worker with CUDA torch (falls back to CPU when no GPU is visible)
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN useradd --create-home --uid 10001 molrg

FROM base AS api
COPY pyproject.toml README.md alembic.ini ./
COPY molrg ./molrg
COPY db ./db
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[api]"
USER molrg
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)" || exit 1
CMD ["uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

FROM base AS worker
# CUDA build of torch from the PyTorch CUDA index (the GPU image's torch lives here, not in pyproject).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini ./
COPY molrg ./molrg
COPY db ./db
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[worker]"
USER molrg
# One worker per GPU: prefork, concurrency 1, a fresh child per task (the parent never touches CUDA; each
# job starts with a new CUDA context and returns all device memory when its child exits).
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "gpu", "--pool", "prefork", \
     "--concurrency", "1", "--max-tasks-per-child", "1", "--without-mingle", "--without-gossip", "-l", "info"]
