"""The recovery kit: everything a new box needs to open a repository, as text and back.

The kit holds the URL and password, for S3 the access keys, for SFTP the private key StackHub
generated (the public half is in the server's `authorized_keys`). `render` writes the text the
console downloads and `stackhub backup repo key` shows; `parse` reads it (or the `--json` of
`repo key`) for `stackhub restore-system --kit FILE`; `repository` turns it into restic's
handle, writing the password and SSH key into a private folder. See docs/security.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters.restic import Repository
from stackhub.backup.repos import sftp_command
from stackhub.errors import Invalid

FIELDS = {"url": "URL", "password": "Password", "access_key_id": "S3 access key id",
          "secret_access_key": "S3 secret access key"}
SSH_LABEL = "SSH private key"


@dataclass(frozen=True)
class Kit:
    """A repository's recovery kit."""

    name: str
    url: str
    password: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    ssh_private_key: str | None = None


def render(kit: Kit, warning: str) -> str:
    """Return the kit as the text file users keep."""
    lines = [f"StackHub backup repository: {kit.name}"]
    for attr, label in FIELDS.items():
        value = getattr(kit, attr)
        if value:
            lines.append(f"{label}: {value}")
    if kit.ssh_private_key:
        lines += [f"{SSH_LABEL}:", kit.ssh_private_key.strip()]
    return "\n".join([*lines, "", warning, ""])


def parse(text: str) -> Kit:
    """Read a kit from its text or JSON form (Invalid when it has no URL or password)."""
    values: dict[str, str] = {}
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as err:
            raise Invalid(f"the recovery kit is not valid JSON ({err})") from err
        if isinstance(loaded, dict):
            values = {str(k): str(v) for k, v in loaded.items() if isinstance(v, str)}
    else:
        labels = {f"{label.lower()}:": attr for attr, label in FIELDS.items()}
        lines = text.splitlines()
        for index, line in enumerate(lines):
            head = line.split(":", 1)[0].strip().lower() + ":"
            if line.startswith("StackHub backup repository:"):
                values["name"] = line.split(":", 1)[1].strip()
            elif head in labels:
                values[labels[head]] = line.split(":", 1)[1].strip()
            elif line.strip() == f"{SSH_LABEL}:":
                block = []
                for rest in lines[index + 1:]:
                    block.append(rest)
                    if rest.startswith("-----END "):
                        break
                values["ssh_private_key"] = "\n".join(block) + "\n"
    if not values.get("url") or not values.get("password"):
        raise Invalid("the recovery kit has no URL or no password line; give the file "
                      "`stackhub backup repo key NAME` printed or the console downloaded")
    return Kit(name=values.get("name") or "recovery", url=values["url"],
               password=values["password"], access_key_id=values.get("access_key_id"),
               secret_access_key=values.get("secret_access_key"),
               ssh_private_key=values.get("ssh_private_key"))


def repository(kit: Kit, folder: Path) -> Repository:
    """Return restic's handle on the kit's repository; secrets go to `folder` (0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    password = folder / "password"
    fsutil.write_atomic(password, kit.password + "\n", mode=0o600)
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    if kit.access_key_id and kit.secret_access_key:
        env.update(AWS_ACCESS_KEY_ID=kit.access_key_id,
                   AWS_SECRET_ACCESS_KEY=kit.secret_access_key)
    options: list[str] = []
    if kit.url.startswith("sftp:") and kit.ssh_private_key:
        key = folder / "id_ed25519"
        fsutil.write_atomic(key, kit.ssh_private_key, mode=0o600)
        options.append("sftp.command=" + sftp_command(kit.url, folder))
    return Repository(name=kit.name, url=kit.url, password_file=password, env=env,
                      options=options)
