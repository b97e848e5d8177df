"""The light restic key: restic's key-file sealing reproduced, checked against a restic file."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from stackhub.adapters import restic_key
from stackhub.adapters.restic_key import KeyFileError

# made by `restic init` (0.14.0) with the password "secretpw"; its master key as
# `restic cat masterkey` printed it
RESTIC_KEY_FILE = (
    b'{"created":"2026-12-04T15:47:14.291794795Z","username":"root","hostname":"vm",'
    b'"kdf":"scrypt","N":32768,"r":8,"p":5,"salt":"R4BaqwhKU9oJheZrziPGdXnRNPRHWd8MIocShXtbig'
    b'l8m1sBP2CY+P2z8XbCb05nhwsy4m0dnsN1T19/HFMGtQ==","data":"tDT3jzjRR5+WX5iV4Z10UhsdLCgMFai9xy'
    b'QDqXKaAW80rY+ajtSaXmDtZX5MrEddla/4LJ2qdeBVMQY4+zvdiMXLeoSJj6TPbjbOY57Xzdb+bu2JSmC5LYIEcO6'
    b'F5Yho4G6J+V40QGLsQxUw0xO0GtUHvNtOqpxTu9ecdj+lcO9WHYzjmrHhOw4mTuutl2bYbad4ZMqI/UurDW+0FfpM'
    b'EA=="}')
PRINTED = """{
  "mac": {
    "k": "aaGT065ju6iobrGXfzONKQ==",
    "r": "itqBCKiAww64WVwO4Ey4AA=="
  },
  "encrypt": "SjQgjVV93GGdnTEfFna/Uh4NHKXGypxgInNwa72HAxw="
}"""


def test_a_key_file_restic_made_opens_to_the_master_key_restic_printed() -> None:
    opened = restic_key.open_key_file(RESTIC_KEY_FILE, "secretpw")
    assert json.loads(opened) == json.loads(PRINTED)
    assert restic_key.master_json(PRINTED) == opened  # the compact form restic itself seals


def test_the_wrong_password_or_a_changed_byte_is_refused() -> None:
    with pytest.raises(KeyFileError, match="does not open"):
        restic_key.open_key_file(RESTIC_KEY_FILE, "secretpW")
    document = json.loads(RESTIC_KEY_FILE)
    data = bytearray(base64.b64decode(document["data"]))
    data[20] ^= 1
    document["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(KeyFileError, match="does not open"):
        restic_key.open_key_file(json.dumps(document).encode(), "secretpw")


def test_a_light_key_file_opens_with_the_same_password_and_is_named_by_its_hash() -> None:
    master = restic_key.master_json(PRINTED)
    key_id, raw = restic_key.key_file(master, "secretpw")
    assert key_id == hashlib.sha256(raw).hexdigest()
    document = json.loads(raw)
    assert (document["kdf"], document["N"], document["r"], document["p"]) == \
        ("scrypt", 4096, 8, 1)
    assert len(base64.b64decode(document["salt"])) == 64
    assert restic_key.open_key_file(raw, "secretpw") == master
    with pytest.raises(KeyFileError):
        restic_key.open_key_file(raw, "other")
    again_id, again = restic_key.key_file(master, "secretpw")
    assert again_id != key_id and json.loads(again)["salt"] != document["salt"]  # fresh salt


@pytest.mark.parametrize("printed", [
    "", "not json", '{"mac": {"k": "aaGT065ju6iobrGXfzONKQ=="}, "encrypt": "x"}',
    '{"mac": {"k": "aaGT065ju6iobrGXfzONKQ==", "r": "itqBCKiAww64WVwO4Ey4AA=="}, '
    '"encrypt": "aaGT065ju6iobrGXfzONKQ=="}',  # 16 bytes where 32 belong
])
def test_anything_but_a_master_key_is_refused(printed: str) -> None:
    with pytest.raises(KeyFileError):
        restic_key.master_json(printed)


@pytest.mark.parametrize("settings", [{"N": 1000, "r": 8, "p": 1}, {"N": 1 << 22, "r": 8, "p": 1},
                                      {"N": 4096, "r": 0, "p": 1}])
def test_odd_scrypt_settings_in_a_key_file_are_refused(settings: dict[str, int]) -> None:
    document = {**json.loads(RESTIC_KEY_FILE), **settings}
    with pytest.raises(KeyFileError, match="scrypt settings"):
        restic_key.open_key_file(json.dumps(document).encode(), "secretpw")
