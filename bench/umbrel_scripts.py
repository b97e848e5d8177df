"""Run every Umbrel app's store scripts in StackHub's sandbox, as an install would.

Run: ``.venv/bin/python bench/umbrel_scripts.py --umbrel DIR [--limit N] [--timeout S]`` with a
local clone of getumbrel/umbrel-apps (needs the Docker engine; builds the sandbox image if
missing). For each app the reader carries scripts for (``exports.sh`` with logic,
``hooks/pre-start``), runs them once in a fresh sandbox against a throwaway data folder and
prints how many completed, how long they took, and why the others failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from stackhub.adapters.engine import DockerEngine  # noqa: E402
from stackhub.adapters.sandbox import Limits, ensure_image  # noqa: E402
from stackhub.apps import scripts  # noqa: E402
from stackhub.catalog.models import AppDefinition  # noqa: E402
from stackhub.catalog.readers import umbrel  # noqa: E402
from stackhub.errors import StackHubError  # noqa: E402


def prepare(app: AppDefinition, data_dir: Path) -> None:
    """Lay out the data folder as an install does before the scripts: files, bind folders."""
    for item in app.files:
        target = data_dir / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.content)
    for service in (app.compose.get("services") or {}).values():
        for volume in service.get("volumes") or [] if isinstance(service, dict) else []:
            source = volume.partition(":")[0] if isinstance(volume, str) else ""
            if source.startswith("${APP_DATA_DIR}/"):
                path = data_dir / source[len("${APP_DATA_DIR}/"):]
                if not path.exists() and "." not in path.name:
                    path.mkdir(parents=True, exist_ok=True)


def main() -> int:
    """Read the store, run each app's scripts, print the tally."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--umbrel", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    engine = DockerEngine()
    image = ensure_image(engine, lambda text: print(text, flush=True))
    apps = []
    for folder in sorted(p for p in args.umbrel.iterdir() if (p / "umbrel-app.yml").is_file()):
        try:
            app = umbrel.read_app_dir(folder)
        except StackHubError:
            continue
        if app.scripts:
            apps.append(app)
    if args.limit:
        apps = apps[: args.limit]
    failures: collections.Counter[str] = collections.Counter()
    ok = warned = 0
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stackhub-umbrel-scripts-") as tmp:
        root = Path(tmp)
        runner = scripts.ScriptRunner(engine, secrets_dir=root / "secrets",
                                      work_dir=root / "sandbox", image=image,
                                      limits=Limits(timeout=args.timeout))
        for app in apps:
            data_dir = root / "appdata" / app.id
            prepare(app, data_dir)
            env = {"APP_PASSWORD": "x" * 32, "APP_SEED": "0" * 64, "DEVICE_HOSTNAME": "box",
                   "DEVICE_DOMAIN_NAME": "box.local", "APP_VERSION": app.version}
            ctx = scripts.ScriptContext(instance=app.id, app_id=app.id, data_dir=data_dir,
                                        env=env, installed=[app.id], addresses=["192.0.2.10"])
            mode = "hook" if scripts.PRE_START in app.scripts else "exports"
            started = time.monotonic()
            try:
                outcome = runner.run(app.scripts, ctx, mode=mode)
                ok += 1
                status = f"ok ({len(outcome.exports)} exported)"
                refused = [line for line in outcome.log.splitlines() if ": refused" in line]
                if refused:
                    warned += 1
                    status += " but refused: " + refused[0][:100]
            except StackHubError as err:
                first = err.message.splitlines()[0]
                failures[first[:80]] += 1
                status = "FAILED: " + err.message.replace("\n", " | ")[-160:]
            times.append(time.monotonic() - started)
            print(f"{app.id} [{'+'.join(sorted(app.scripts))}]: {status}", flush=True)
    print(f"\n{ok}/{len(apps)} apps' scripts completed in the sandbox; "
          f"mean {sum(times) / max(1, len(times)):.2f} s, max {max(times, default=0):.2f} s; "
          f"{warned} of them called a command the sandbox refuses (app compose/docker)")
    for reason, count in failures.most_common(10):
        print(f"  {count:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
