"""Build the store-script sandbox image when missing: ``python -m stackhub.adapters.sandbox_build``.

Used by scripts/test-images (so tests never pay for the build) and by hand after install;
StackHub itself builds it on first need. See adapters/sandbox.py.
"""

from __future__ import annotations

import sys

from stackhub.adapters.engine import DockerEngine
from stackhub.adapters.sandbox import ensure_image
from stackhub.errors import StackHubError


def main() -> int:
    """Build the image unless one with the current recipe's label is there."""
    try:
        ref = ensure_image(DockerEngine(), lambda text: print(f"sandbox: {text}", flush=True))
    except StackHubError as err:
        print(f"sandbox: {err.message}", file=sys.stderr)
        return 1
    print(f"sandbox: {ref} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
