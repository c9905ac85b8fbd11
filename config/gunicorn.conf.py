"""gunicorn settings for the web server: ``gunicorn config.wsgi:application -c config/gunicorn.conf.py``
(the Dockerfile and docker-compose.yml run it so). Command-line options override these.

- ``workers`` (``GUNICORN_WORKERS``, default 2): one process per core. Each loads its own
  encoders and opens the index (about 1.3 GB RSS with the Flipkart demo catalog, part of it the
  memory-mapped index shared between processes), so add workers with cores, not with clients.
- ``threads`` (``GUNICORN_THREADS``, default 1: sync workers). A search is mostly CPU-bound
  (encoding, fusion, building the page) and holds the GIL for most of it. bench/load.py measured
  2 workers x 4 gthread threads against 2 sync workers (bench/RESULTS.md "Load"): more requests/s
  at 8 clients in one run (x1.5, p99 x2.2) and fewer in another (x0.97, p95 x2.2), a higher p95 at
  32 clients (x1.8) and 5-20 % more CPU per request; so sync stays the default. Put a buffering
  proxy (nginx) in front so slow clients never hold a sync worker; more than 1 switches to
  gthread workers.
- ``timeout`` 120 s: a photo search on a cold, busy 2-core machine can take tens of seconds.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = 120
graceful_timeout = 30
