"""API tokens: issue, rotate and revoke them, and revoke them whenever a password changes.

A user has at most one API token (DRF's ``Token``, whose key is its primary key). Each login
through ``POST /api/auth/token/`` issues a new key and revokes the previous one, as does
``POST /api/auth/token/rotate/``; ``DELETE /api/auth/token/`` revokes it.

A password change revokes the user's token, however the password was changed: the admin's
password form, ``manage.py changepassword``, Django's password change and reset views, or code
calling ``set_password`` and ``save``. The receivers below compare the stored password hash
before and after each save of a user, so no path can forget to call them; a hash upgrade on
login (Django re-hashing the same password with newer parameters) is not a change. Sessions need no such
receiver: Django already ends every session whose stored password hash no longer matches
(``get_session_auth_hash``), except the one the change was made in (``update_session_auth_hash``).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)

#: Attribute set on a user being saved whose password hash changed (read by :func:`_revoke_after_password_change`).
_PASSWORD_CHANGED = "_api_token_password_changed"


def token_issue(user) -> Token:
    """A new API token for ``user``; the previous one, if any, stops working at once.

    Returns:
        The new ``Token`` (its ``key`` is 40 hex characters, ``created`` is now).
    """
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def token_revoke(user) -> int:
    """Revoke ``user``'s API token; returns how many were deleted (0 or 1)."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="shop.tokens.password_change_seen")
def _password_change_seen(sender, instance, raw: bool = False, update_fields=None, **kwargs) -> None:
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    if update_fields is not None and set(update_fields) == {"password"} and getattr(instance, "_password", None) is None:
        return  # a hash upgrade on login (check_password's setter): the same password, stored anew
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        setattr(instance, _PASSWORD_CHANGED, True)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="shop.tokens.revoke_after_password_change")
def _revoke_after_password_change(sender, instance, created: bool = False, raw: bool = False, **kwargs) -> None:
    if raw or not getattr(instance, _PASSWORD_CHANGED, False):
        return
    delattr(instance, _PASSWORD_CHANGED)
    if token_revoke(instance):
        logger.info("API token of user %s revoked: the password changed", instance.pk)
