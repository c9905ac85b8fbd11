"""Encoder access: the process's text and image encoders and the zero-shot bridge, under the settings.

Models load on first use, once per process (``mlmodels.registry``); the ``mlmodels`` imports sit
inside the functions so that importing this module (Django start-up, a backend's creation)
loads no model library.
"""

from __future__ import annotations

from django.conf import settings

from mlmodels.fusion import FusionSpace


def text_encoder():
    """The process's MiniLM encoder under the settings (``ENCODER_DEVICE``, ``TEXT_ENCODER_RUNTIME``, ``ENCODER_CACHE_DIR``)."""
    from mlmodels.registry import get_text_encoder  # model libraries load on first use

    return get_text_encoder(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)


def bridge() -> FusionSpace:
    """The zero-shot bridge over :func:`text_encoder` (the cold-start fusion space)."""
    from mlmodels.registry import get_bridge  # model libraries load on first use

    return get_bridge(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)


def image_encoder():
    """The process's EfficientNet encoder under the settings (``ENCODER_DEVICE``, ``IMAGE_ENCODER_RUNTIME``, ``ENCODER_CACHE_DIR``)."""
    from mlmodels.registry import get_image_encoder  # model libraries load on first use

    return get_image_encoder(settings.ENCODER_DEVICE, settings.IMAGE_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)


def image_encoder_status() -> str:
    """The image encoder's runtime under the settings, for ``search_status`` (loads no model)."""
    from mlmodels.image import describe_runtime  # imports the encoder module, not its model

    return describe_runtime(settings.ENCODER_DEVICE, settings.IMAGE_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)


def text_encoder_status() -> str:
    """The text encoder's runtime under the settings, for ``search_status`` (loads no model)."""
    from mlmodels.text import describe_runtime  # imports the encoder module, not its model

    return describe_runtime(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)
