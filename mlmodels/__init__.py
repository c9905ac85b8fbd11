"""Encoders and the text-image fusion space used by product search.

Everything here loads weights from installed packages only (no network), lazily, once per
process. See :mod:`mlmodels.registry` for the shared instances.
"""
