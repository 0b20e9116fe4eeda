import os

import pytest

from medkiosk.security.crypto import DecryptionError, FieldCipher

CIPHER = FieldCipher(os.urandom(32))


def test_a_value_encrypts_to_something_else_and_back():
    stored = CIPHER.encrypt("patient.id_number", "320102195803154210")
    assert "320102195803154210" not in stored
    assert CIPHER.decrypt("patient.id_number", stored) == "320102195803154210"


def test_the_same_value_never_encrypts_the_same_way_twice():
    assert CIPHER.encrypt("patient.name", "王建国") != CIPHER.encrypt("patient.name", "王建国")


def test_a_ciphertext_moved_to_another_field_does_not_decrypt():
    stored = CIPHER.encrypt("patient.name", "王建国")
    with pytest.raises(DecryptionError):
        CIPHER.decrypt("patient.phone", stored)


def test_another_key_cannot_read_it():
    stored = CIPHER.encrypt("patient.name", "王建国")
    with pytest.raises(DecryptionError):
        FieldCipher(os.urandom(32)).decrypt("patient.name", stored)


def test_lookup_hash_is_stable_normalised_and_keyed():
    a = CIPHER.lookup_hash("id_number", "11010519491231002x")
    assert a == CIPHER.lookup_hash("id_number", " 11010519491231002X ")
    assert a != FieldCipher(os.urandom(32)).lookup_hash("id_number", "11010519491231002X")
