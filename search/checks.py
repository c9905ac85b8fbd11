"""Configuration checks run by ``manage.py check`` (ids ``search.E0xx``)."""

from importlib.metadata import PackageNotFoundError, version

from django.conf import settings
from django.core.checks import Error, register

from mlmodels import registry
from mlmodels.types import IMAGE, RUNTIMES, TEXT
from search.hybrid.compose import COMPOSE_MODES
from search.hybrid.fusion import FUSION_METHODS
from search.hybrid.retrievers import WEIGHT_KEYS
from search.translation import TRANSLATION_MODES


@register()
def search_settings_check(app_configs, **kwargs):
    errors = []
    if "default" not in getattr(settings, "SEARCH_BACKENDS", {}):
        errors.append(Error("SEARCH_BACKENDS has no 'default' entry.",
                            hint="Add SEARCH_BACKENDS['default'] = {'BACKEND': 'search.backends.embedded', ...}", id="search.E001"))
    if settings.SEARCH_FUSION not in FUSION_METHODS:
        errors.append(Error(f"SEARCH_FUSION is {settings.SEARCH_FUSION!r}.", hint=f"Use one of: {', '.join(FUSION_METHODS)}.", id="search.E002"))
    if settings.SEARCH_COMPOSE not in COMPOSE_MODES:
        errors.append(Error(f"SEARCH_COMPOSE is {settings.SEARCH_COMPOSE!r}.", hint=f"Use one of: {', '.join(COMPOSE_MODES)}.", id="search.E020"))
    if settings.SEARCH_QUERY_TRANSLATION not in TRANSLATION_MODES:
        errors.append(Error(f"SEARCH_QUERY_TRANSLATION is {settings.SEARCH_QUERY_TRANSLATION!r}.",
                            hint=f"Use one of: {', '.join(TRANSLATION_MODES)}.", id="search.E021"))
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
    errors.extend(encoder_settings_errors())
    return errors


def encoder_settings_errors() -> list[Error]:
    """``TEXT_ENCODER``, ``IMAGE_ENCODER`` and ``ADDITIONAL_TEXT_ENCODERS`` name registered encoders of
    their modality (search.E008-E010) whose weights' package is installed (search.E011) and which
    honour the modality's runtime setting (search.E012). Reads the registry only: no model loads."""
    errors: list[Error] = []
    chosen = []
    for setting, modality, check_id in (("TEXT_ENCODER", TEXT, "search.E008"), ("IMAGE_ENCODER", IMAGE, "search.E009")):
        name = getattr(settings, setting)
        if name not in registry.encoder_names(modality):
            errors.append(Error(f"{setting} is {name!r}, which is not a registered {modality} encoder.",
                                hint=f"Use one of: {', '.join(registry.encoder_names(modality))}.", id=check_id))
        else:
            chosen.append((setting, registry.encoder_spec(name)))
    extra = list(settings.ADDITIONAL_TEXT_ENCODERS)
    for name in extra:
        spec = registry.ENCODERS.get(name)
        if spec is None or spec.modality != TEXT or spec.vector_field is None or name == settings.TEXT_ENCODER or extra.count(name) > 1:
            usable = [n for n in registry.encoder_names(TEXT) if registry.ENCODERS[n].vector_field and n != settings.TEXT_ENCODER]
            errors.append(Error(f"ADDITIONAL_TEXT_ENCODERS names {name!r}, which is not a text encoder with a vector field of its own "
                                "(or is TEXT_ENCODER itself, or is named twice).",
                                hint=f"Use some of: {', '.join(usable) or '(none registered)'}.", id="search.E010"))
        else:
            chosen.append(("ADDITIONAL_TEXT_ENCODERS", spec))
    for setting, spec in chosen:
        try:
            version(spec.package)
        except PackageNotFoundError:
            errors.append(Error(f"{setting} names {spec.name!r}, whose package {spec.package!r} is not installed.",
                                hint=f"pip install {spec.package} (and pin it in pyproject.toml).", id="search.E011"))
        runtime = str(getattr(settings, f"{spec.modality.upper()}_ENCODER_RUNTIME")).lower()
        if runtime in RUNTIMES and runtime != "auto" and runtime not in spec.runtimes:
            errors.append(Error(f"{spec.modality.upper()}_ENCODER_RUNTIME is {runtime!r}, which encoder {spec.name!r} does not run on.",
                                hint=f"Use one of: auto, {', '.join(r for r in spec.runtimes if r != 'auto')}.", id="search.E012"))
    return errors
