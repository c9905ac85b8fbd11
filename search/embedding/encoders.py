"""Encoder access: the encoders the settings name, their dimensions, and the zero-shot bridge.

``TEXT_ENCODER`` and ``IMAGE_ENCODER`` name registered encoders (:mod:`mlmodels.registry`);
``ADDITIONAL_TEXT_ENCODERS`` names text encoders whose vectors fill vector fields of their own.
Dimensions and names come from the registry's specs, so they cost no model load; the models
load on first use, once per process (or at warm-up, :mod:`search.warmup`).
"""

from __future__ import annotations

from django.conf import settings

from mlmodels import registry
from mlmodels.fusion import FusionSpace
from mlmodels.types import IMAGE, TEXT, EncoderSpec, ImageEncoder, TextEncoder


def text_spec() -> EncoderSpec:
    """The spec of ``TEXT_ENCODER`` (``UnknownEncoder`` when it is not registered; ``manage.py check`` says so first)."""
    return registry.encoder_spec(settings.TEXT_ENCODER, TEXT)


def image_spec() -> EncoderSpec:
    """The spec of ``IMAGE_ENCODER``."""
    return registry.encoder_spec(settings.IMAGE_ENCODER, IMAGE)


def additional_text_specs() -> tuple[EncoderSpec, ...]:
    """The specs of ``ADDITIONAL_TEXT_ENCODERS``, each filling its own vector field."""
    return tuple(registry.encoder_spec(name, TEXT) for name in settings.ADDITIONAL_TEXT_ENCODERS)


def text_dim() -> int:
    """Width of the text encoder's vectors (MiniLM: 384), without loading it."""
    return text_spec().dim


def image_dim() -> int:
    """Width of the image encoder's features (EfficientNet-Lite0: 1280), without loading it."""
    return image_spec().dim


def encoder_names() -> dict[str, str]:
    """``{"text": TEXT_ENCODER, "image": IMAGE_ENCODER}`` (what a fusion head records it was trained on)."""
    return {TEXT: text_spec().name, IMAGE: image_spec().name}


def text_encoder() -> TextEncoder:
    """The process's text encoder under the settings (``TEXT_ENCODER``, ``ENCODER_DEVICE``, ``TEXT_ENCODER_RUNTIME``, ``ENCODER_CACHE_DIR``)."""
    return registry.get_text_encoder(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR,
                                     name=text_spec().name)


def additional_text_encoder(spec: EncoderSpec) -> TextEncoder:
    """The process's instance of an additional text encoder (settings as for :func:`text_encoder`)."""
    return registry.get_text_encoder(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR,
                                     name=spec.name)


def bridge() -> FusionSpace:
    """The zero-shot bridge over :func:`text_encoder` (the cold-start fusion space)."""
    return registry.get_bridge(settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR,
                               name=text_spec().name)


def image_encoder() -> ImageEncoder:
    """The process's image encoder under the settings (``IMAGE_ENCODER``, ``ENCODER_DEVICE``, ``IMAGE_ENCODER_RUNTIME``, ``ENCODER_CACHE_DIR``)."""
    return registry.get_image_encoder(settings.ENCODER_DEVICE, settings.IMAGE_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR,
                                      name=image_spec().name)


def image_encoder_status() -> str:
    """The image encoder's runtime under the settings, for ``search_status`` (loads no model)."""
    return registry.describe_runtime(image_spec().name, settings.ENCODER_DEVICE, settings.IMAGE_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)


def text_encoder_status() -> str:
    """The text encoder's runtime under the settings, for ``search_status`` (loads no model)."""
    return registry.describe_runtime(text_spec().name, settings.ENCODER_DEVICE, settings.TEXT_ENCODER_RUNTIME, settings.ENCODER_CACHE_DIR)
