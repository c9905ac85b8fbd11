"""Health checks for load balancers and orchestrators: ``/healthz`` (liveness) and ``/readyz`` (readiness).

``/healthz`` answers 200 whenever the process serves requests: it touches neither the models,
the database nor the index. ``/readyz`` answers 200 once this process's warm start
(:mod:`search.warmup`) has loaded the encoders and the search index opens, and 503 with a JSON
reason before (``{"status": "warming", "reason": "loading the image encoder", ...}``); a process
that was never warmed starts its warm-up on the first ``/readyz``. Both send ``Cache-Control: no-store``.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from search import warmup
from search.backends import get_backend
from search.backends.base import SearchBackendError
from search.embedding import encoders


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: ``200 {"status": "ok"}`` while the process serves."""
    return JsonResponse({"status": "ok"})


def _not_ready(state: str, reason: str, **extra) -> JsonResponse:
    response = JsonResponse({"status": state, "reason": reason, **extra}, status=503)
    # Not an error worth a log line per poll (Django logs every 5xx at ERROR, django.utils.log.log_response).
    response._has_been_logged = True
    return response


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 once the encoders are warm and the index opens; 503 with ``status`` and ``reason`` before.

    ``status`` is ``"warming"`` (``reason`` names what is loading), ``"failed"`` (the warm-up
    failed; ``reason`` says why; it is tried again after ``search.warmup.RETRY_AFTER_S``) or
    ``"unavailable"`` (the encoders are warm but the index cannot be opened). A 200 names the
    encoders, the number of indexed products and the warm-up's seconds.
    """
    warmup.start(reason="readyz")
    now = warmup.status()
    elapsed = round(time.monotonic() - now.started_at, 1) if now.started_at is not None else 0.0
    if now.state == "failed":
        return _not_ready("failed", f"the warm start failed at {now.step or 'start'}: {now.error}", since_s=elapsed)
    if now.state != "ready":
        what = f"loading the {now.step}" if now.step else "starting the warm-up"
        return _not_ready("warming", what, since_s=elapsed, done=list(now.steps_s))
    try:
        documents = get_backend().count()
    except (SearchBackendError, OSError, ValueError) as exc:
        return _not_ready("unavailable", f"the search index cannot be opened: {exc}")
    return JsonResponse({
        "status": "ready",
        "encoders": {"text": encoders.text_spec().name, "image": encoders.image_spec().name,
                     "additional": [spec.name for spec in encoders.additional_text_specs()]},
        "index": {"documents": documents},
        "warm_up_s": round((now.finished_at or now.started_at or 0.0) - (now.started_at or 0.0), 1),
        "steps_s": now.steps_s,
    })
