"""API tokens are revoked when a password changes, and only then (issue 11, point 9).

Real users and tokens in SQLite; the same over HTTP on a real server is
``tests/attacks/test_authorisation.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from rest_framework.authtoken.models import Token

from shop.tokens import token_issue, token_revoke

pytestmark = pytest.mark.django_db


class FastPBKDF2(PBKDF2PasswordHasher):
    iterations = 2


class FasterPBKDF2(PBKDF2PasswordHasher):
    iterations = 1


def test_a_new_password_revokes_the_token_and_other_changes_do_not(django_user_model):
    user = django_user_model.objects.create_user("dora", password="pw-dora-1")
    key = token_issue(user).key
    user.email = "dora@example.com"
    user.save()
    assert Token.objects.filter(key=key).exists()
    user.set_password("pw-dora-2")
    user.save()
    assert not Token.objects.filter(user=user).exists()


def test_a_hash_stored_directly_revokes_the_token(django_user_model):
    user = django_user_model.objects.create_user("eve", password="pw-eve-1")
    token_issue(user)
    user.password = "md5$salt$" + "0" * 32  # a hash made elsewhere, saved with the user
    user.save()
    assert not Token.objects.filter(user=user).exists()


def test_a_hash_upgrade_on_login_keeps_the_token(django_user_model, settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.FastPBKDF2"]
    user = django_user_model.objects.create_user("finn", password="pw-finn-1")
    key = token_issue(user).key
    user.password = FasterPBKDF2().encode("pw-finn-1", "somesalt")
    django_user_model.objects.filter(pk=user.pk).update(password=user.password)
    assert user.check_password("pw-finn-1")  # re-hashed with 2 iterations and saved
    assert django_user_model.objects.get(pk=user.pk).password.startswith("pbkdf2_sha256$2$")
    assert Token.objects.filter(key=key).exists()


def test_issuing_replaces_and_revoking_deletes(django_user_model):
    user = django_user_model.objects.create_user("gus", password="pw-gus-1")
    first = token_issue(user).key
    second = token_issue(user).key
    assert first != second and list(Token.objects.filter(user=user).values_list("key", flat=True)) == [second]
    assert token_revoke(user) == 1 and token_revoke(user) == 0
