# Image for the web and worker services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.base
WORKDIR /app

# libgomp: OpenMP for torch on CPU.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes do not reinstall them. torch and torchvision come from
# PyPI with the versions pinned in pyproject.toml.
COPY pyproject.toml ./
RUN mkdir -p config shop search workers mlmodels && touch README.md \
    && pip install --upgrade pip \
    && pip install ".[deploy]" && pip uninstall -y storefront-search

COPY . .
RUN pip install --no-deps -e . && mkdir -p /app/var

EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py"]
