"""Serve Quietcast with Daphne on HOST:PORT, with the flags its settings call for.

`make run` starts the server through here rather than calling `daphne` from the shell script, so that settings
read from `.env` (TRUSTED_PROXY) shape the command line as they shape everything else.
"""

import os

import django
from django.conf import settings


def daphne_arguments(host: str, port: int) -> list[str]:
    arguments = ["-b", host, "-p", str(port)]
    if settings.TRUSTED_PROXY:
        # Client addresses in logs come from X-Forwarded-For only when a trusted proxy sets it.
        arguments.append("--proxy-headers")
    return [*arguments, "quietcast.asgi:application"]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quietcast.settings")
    django.setup()
    from daphne.cli import CommandLineInterface

    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 8000)
    print(f"Quietcast is on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    CommandLineInterface().run(daphne_arguments(host, port))


if __name__ == "__main__":
    main()
