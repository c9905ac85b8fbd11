"""Configuration checks run by ``manage.py check`` (ids ``search.E00x``)."""

from django.conf import settings
from django.core.checks import Error, register

from mlmodels.onnx_export import RUNTIMES
from search.hybrid.fusion import FUSION_METHODS
from search.hybrid.retrievers import WEIGHT_KEYS


@register()
def search_settings_check(app_configs, **kwargs):
    errors = []
    if "default" not in getattr(settings, "SEARCH_BACKENDS", {}):
        errors.append(Error("SEARCH_BACKENDS has no 'default' entry.",
                            hint="Add SEARCH_BACKENDS['default'] = {'BACKEND': 'search.backends.embedded', ...}", id="search.E001"))
    if settings.SEARCH_FUSION not in FUSION_METHODS:
        errors.append(Error(f"SEARCH_FUSION is {settings.SEARCH_FUSION!r}.", hint=f"Use one of: {', '.join(FUSION_METHODS)}.", id="search.E002"))
    valid = set(WEIGHT_KEYS)
    unknown = set(settings.SEARCH_WEIGHTS) - valid
    if unknown:
        errors.append(Error(f"SEARCH_WEIGHTS has unknown retrievers: {', '.join(sorted(unknown))}.",
                            hint=f"Valid keys: {', '.join(sorted(valid))}.", id="search.E003"))
    if any(w < 0 for w in settings.SEARCH_WEIGHTS.values()) or any(w < 0 for w in settings.FUSION_WEIGHTS.values()):
        errors.append(Error("Search and fusion weights must be >= 0.", id="search.E004"))
    if settings.SEARCH_RRF_K <= 0:
        errors.append(Error(f"SEARCH_RRF_K is {settings.SEARCH_RRF_K}; it must be positive.", id="search.E005"))
    for name, check_id in (("IMAGE_ENCODER_RUNTIME", "search.E006"), ("TEXT_ENCODER_RUNTIME", "search.E007")):
        value = getattr(settings, name)
        if str(value).lower() not in RUNTIMES:
            errors.append(Error(f"{name} is {value!r}.", hint=f"Use one of: {', '.join(RUNTIMES)}.", id=check_id))
    return errors
