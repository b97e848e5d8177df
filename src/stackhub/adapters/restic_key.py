"""restic key files: a second key with light scrypt settings for a password StackHub made.

restic derives the key of every command from the password with the scrypt settings of the
repository's key file, calibrated by `restic init` to take about 0.5 s; restic 0.14 has no
option to choose them. For a password StackHub generated (32 random bytes, never typed), the
stretching protects nothing, yet it costs every restic run (a restore runs three or four).
So StackHub adds a second key file, sealed with the same password and light settings, and
names it with `--key-hint`; the first key stays, so the password opens the repository in
any restic anywhere, and a missing or damaged second key only makes restic try the others.

The format (restic's design document, "Keys, Encryption and MAC"): a JSON document with the
scrypt settings, a 64-byte salt and `data` = IV (16 bytes) || AES-256-CTR(master key JSON)
|| Poly1305-AES MAC over the ciphertext; scrypt gives 64 bytes: the AES key, then the MAC's
`k` (AES key of the nonce) and `r`. The file's name is the SHA-256 of its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

LIGHT = {"N": 1 << 12, "r": 8, "p": 1}
"""scrypt settings of the second key: ~10 ms; only for passwords of 32 random bytes."""
_SALT = 64
_NONCE = 16
_TAG = 16


class KeyFileError(ValueError):
    """A key file that is malformed or that the password does not open."""


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes, bytes]:
    """Return (AES key, MAC k, MAC r) derived from the password as restic does."""
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or n > 1 << 20:
        raise KeyFileError(f"unexpected scrypt settings N={n} r={r} p={p}")
    out = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=64,
                         maxmem=256 * n * r * p + (1 << 20))
    return out[:32], out[32:48], out[48:64]


def _mac(ciphertext: bytes, nonce: bytes, k: bytes, r: bytes) -> bytes:
    """Return restic's Poly1305-AES tag: key r || AES_k(nonce)."""
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()  # noqa: S305 - one block
    s = encryptor.update(nonce) + encryptor.finalize()
    return Poly1305.generate_tag(r + s, ciphertext)


def seal(plaintext: bytes, keys: tuple[bytes, bytes, bytes]) -> bytes:
    """Encrypt and authenticate `plaintext` as restic does: IV || ciphertext || tag."""
    nonce = os.urandom(_NONCE)
    encryptor = Cipher(algorithms.AES(keys[0]), modes.CTR(nonce)).encryptor()
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + ciphertext + _mac(ciphertext, nonce, keys[1], keys[2])


def unseal(data: bytes, keys: tuple[bytes, bytes, bytes]) -> bytes:
    """Check the tag and decrypt what `seal` made; raise KeyFileError on a wrong key."""
    if len(data) < _NONCE + _TAG:
        raise KeyFileError("the sealed data is too short")
    nonce, ciphertext, tag = data[:_NONCE], data[_NONCE:-_TAG], data[-_TAG:]
    if not hmac.compare_digest(_mac(ciphertext, nonce, keys[1], keys[2]), tag):
        raise KeyFileError("the password does not open this key file")
    decryptor = Cipher(algorithms.AES(keys[0]), modes.CTR(nonce)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def master_json(printed: str) -> bytes:
    """Return the master key as compact JSON from `restic cat masterkey`'s output."""
    try:
        found: Any = json.loads(printed)
        mac, encrypt = found["mac"], found["encrypt"]
        parts = [base64.b64decode(mac["k"], validate=True),
                 base64.b64decode(mac["r"], validate=True),
                 base64.b64decode(encrypt, validate=True)]
    except (ValueError, KeyError, TypeError) as err:
        raise KeyFileError(f"restic printed no master key: {err}") from err
    if [len(p) for p in parts] != [16, 16, 32]:
        raise KeyFileError("restic printed a master key of unexpected size")
    return json.dumps({"mac": {"k": mac["k"], "r": mac["r"]}, "encrypt": encrypt},
                      separators=(",", ":")).encode()


def key_file(master: bytes, password: str, *, settings: dict[str, int] | None = None,
             now: datetime | None = None) -> tuple[str, bytes]:
    """Return (id, bytes) of a key file that opens `master` with `password`."""
    chosen = settings or LIGHT
    salt = os.urandom(_SALT)
    keys = _derive(password, salt, chosen["N"], chosen["r"], chosen["p"])
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    document = {"created": created, "username": "stackhub", "hostname": "stackhub-light-key",
                "kdf": "scrypt", "N": chosen["N"], "r": chosen["r"], "p": chosen["p"],
                "salt": base64.b64encode(salt).decode(),
                "data": base64.b64encode(seal(master, keys)).decode()}
    raw = json.dumps(document, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest(), raw


def open_key_file(raw: bytes, password: str) -> bytes:
    """Return the master key JSON a key file holds (restic's own key files too)."""
    try:
        document = json.loads(raw)
        if document.get("kdf") != "scrypt":
            raise KeyFileError(f"unknown key derivation {document.get('kdf')!r}")
        keys = _derive(password, base64.b64decode(document["salt"]), int(document["N"]),
                       int(document["r"]), int(document["p"]))
        return unseal(base64.b64decode(document["data"]), keys)
    except (ValueError, KeyError, TypeError) as err:
        if isinstance(err, KeyFileError):
            raise
        raise KeyFileError(f"not a restic key file: {err}") from err
