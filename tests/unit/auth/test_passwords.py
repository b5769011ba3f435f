"""argon2id hashes: verification, refusal of wrong or garbage input, and rehash detection."""

from __future__ import annotations

from argon2 import PasswordHasher

from packyard.auth.passwords import hash_password, needs_rehash, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery")

    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert hash_password("correct horse battery") != stored  # a fresh salt each time


def test_no_hash_or_a_garbage_hash_never_verifies() -> None:
    assert not verify_password(None, "anything")
    assert not verify_password("", "anything")
    assert not verify_password("$2b$12$notargon2atall", "anything")


def test_hashes_made_with_weaker_parameters_need_a_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw-123456")

    assert verify_password(weak, "pw-123456")
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("pw-123456"))
    assert needs_rehash("not a hash")
