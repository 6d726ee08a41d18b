"""``python -m polyvisor_hyperv_loopback``: run the loopback Windows/Hyper-V host until SIGTERM/SIGINT.

The password comes from an environment variable (never argv, never printed).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .loopback import LoopbackHost

DEFAULT_PASSWORD_ENV = "POLYVISOR_HYPERV_HOST_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polyvisor-hyperv-host",
        description="Serve WinRM/PowerShell remoting on 127.0.0.1 backed by an in-memory Hyper-V host.",
    )
    parser.add_argument("--username", default="Administrator", help="account to accept")
    parser.add_argument(
        "--password-env",
        default=DEFAULT_PASSWORD_ENV,
        metavar="NAME",
        help=f"environment variable holding the password (default {DEFAULT_PASSWORD_ENV})",
    )
    parser.add_argument("--http-port", type=int, default=None, metavar="PORT", help="HTTP listener port (0: any)")
    parser.add_argument("--https-port", type=int, default=None, metavar="PORT", help="HTTPS listener port (0: any)")
    parser.add_argument("--state-dir", type=Path, default=None, help="where the test CA and certificate go")
    parser.add_argument("--no-basic", action="store_true", help="refuse Basic authentication")
    parser.add_argument(
        "--allow-unencrypted", action="store_true", help="accept plain-text SOAP over HTTP (AllowUnencrypted=true)"
    )
    parser.add_argument(
        "--cmdlet-latency-ms",
        type=float,
        default=0,
        metavar="MS",
        help="how long each Hyper-V cmdlet takes (real ones take tens to hundreds of ms; default 0)",
    )
    parser.add_argument(
        "--kvp-delay",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long after a VM starts its guest's KVP daemon reports its IP addresses (default 3)",
    )
    parser.add_argument(
        "--base-vhd",
        action="append",
        default=[],
        type=_base_vhd,
        metavar="PATH=SIZE_MIB",
        help="a dynamic VHD/VHDX to place on the host at start (a base image to clone; repeatable)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="delete a shell or runspace pool idle this long, unless the client asks otherwise (Windows: 7200)",
    )
    parser.add_argument(
        "--max-idle-timeout",
        type=float,
        default=2147483.647,
        metavar="SECONDS",
        help="the longest idle timeout a client may ask for (Windows: 2147483.647)",
    )
    parser.add_argument(
        "--keytab",
        type=Path,
        default=None,
        metavar="PATH",
        help="accept Kerberos with the service keys (HTTP/<host>) in this keytab; the realm comes from KRB5_CONFIG",
    )
    parser.add_argument(
        "--credssp", action="store_true", help="accept CredSSP on the HTTPS listener (Enable-WSManCredSSP -Role Server)"
    )
    parser.add_argument("--ready-file", type=Path, default=None, help="write the endpoints as JSON here once serving")
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests")
    return parser


def _base_vhd(value: str) -> tuple[str, int]:
    """Parse ``PATH=SIZE_MIB`` (the path may hold ``=``: the size is after the last one)."""
    path, sep, size = value.rpartition("=")
    if not sep or not path or not size.isdigit() or int(size) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not PATH=SIZE_MIB (a Windows path and a size in MiB)")
    return path, int(size)


def main() -> None:
    """Entry point of ``polyvisor-hyperv-host``."""
    args = _parser().parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    password = os.environ.get(args.password_env)
    if not password:
        sys.exit(f"polyvisor-hyperv-host: set the password in the environment variable {args.password_env}")
    if args.http_port is None and args.https_port is None:
        args.http_port = 0
    if args.state_dir is not None:
        args.state_dir.mkdir(parents=True, exist_ok=True)

    from .engine import Engine  # Imported here: keeps --help fast.

    # Both listeners share one engine so they show the same Hyper-V host.
    engine = Engine()
    engine.host.cmdlet_latency = args.cmdlet_latency_ms / 1000
    engine.host.kvp_delay = args.kvp_delay
    for path, size_mib in args.base_vhd:
        engine.host.disks.new_vhd(path, size_mib * 1024 * 1024)
    hosts: list[LoopbackHost] = []
    for https, port in ((False, args.http_port), (True, args.https_port)):
        if port is None:
            continue
        hosts.append(
            LoopbackHost(
                args.username,
                password,
                https=https,
                port=port,
                state_dir=args.state_dir,
                engine=engine,
                allow_basic=not args.no_basic,
                allow_unencrypted=args.allow_unencrypted,
                idle_timeout=args.idle_timeout,
                max_idle_timeout=args.max_idle_timeout,
                keytab=args.keytab,
                allow_credssp=args.credssp and https,
            ).start()
        )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A host that does not exit after SIGTERM is sent SIGUSR1 by launch.HostProcess.stop: write where each thread is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        endpoints = {
            "username": args.username,
            "password_env": args.password_env,
            "endpoints": [
                {
                    "scheme": "https" if host.https else "http",
                    "url": host.url,
                    "host": host.host,
                    "port": host.port,
                    "ca_path": str(host.ca_path) if host.ca_path else None,
                }
                for host in hosts
            ],
        }
        for endpoint in endpoints["endpoints"]:
            ca = f" (CA {endpoint['ca_path']})" if endpoint["ca_path"] else ""
            print(f"{endpoint['scheme'].upper()} {endpoint['url']}{ca}", flush=True)
        if args.ready_file is not None:
            temporary = args.ready_file.with_name(args.ready_file.name + ".tmp")
            temporary.write_text(json.dumps(endpoints, indent=2) + "\n", encoding="utf-8")
            temporary.replace(args.ready_file)  # Readers never see a half-written file.
        stop.wait()
    finally:
        for host in hosts:
            host.close()


if __name__ == "__main__":
    main()
