"""Command line for the devstack servers: python -m devstack {up,down,exec,run,secrets}."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import cast

from common.conf.nats_trust import write_deployment
from devstack.layout import PROFILES, REPO_ROOT, DevStackError, StackEnv
from devstack.servers import ensure_databases
from devstack.stack import Stack
from devstack.supervisor import acquire_run_lock, exit_status, release_run_lock, run_lock_holder

RUN_DATABASES = ("gateway", "auth", "main")
RUN_HOOK = "devstack.run"
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# si_code of a signal the kernel raised itself, as the terminal does for Ctrl-C to the whole foreground group.
_SI_KERNEL = 0x80

RunHook = Callable[[StackEnv], "int | None"]


def _log(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        # Whatever arrived meanwhile was about the work just finished; delivering it now would only interrupt us.
        while signal.sigtimedwait(_SIGNALS, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _unblock_signals() -> None:
    # Runs in the forked child before exec. A Ctrl-C pending since the fork must act as it would after exec
    # (default action), not raise KeyboardInterrupt in here; ignored signals stay ignored, as exec keeps them.
    for sig in _SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


def _stop(stack: Stack) -> None:
    # A second Ctrl-C must not cut the shutdown short and leave servers behind.
    with _signals_blocked():
        stack.stop()


def _summary(stack: Stack, began: float, created: Sequence[str]) -> str:
    groups = {"started": stack.started, "reused": stack.reused, "external": stack.external}
    parts = [f"{kind}: {', '.join(names)}" for kind, names in groups.items() if names]
    text = f"{stack.profile} stack ready in {time.monotonic() - began:.1f}s ({'; '.join(parts) or 'nothing to do'})"
    if created:
        text += f"; created databases {', '.join(created)}"
    return text


def _print_exports(env: StackEnv) -> None:
    for key, value in env.as_environ().items():
        print(f"export {key}={shlex.quote(value)}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    stack = Stack(args.profile, args.root)
    began = time.monotonic()
    env = stack.start()
    created = ensure_databases(env.database_url, args.db)
    _log(_summary(stack, began, created))
    _print_exports(env)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    with _signals_blocked():
        stopped = Stack(args.profile, args.root).down()
    _log(f"stopped {', '.join(stopped)}" if stopped else f"no {args.profile} server was running")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _log("exec needs a command after --")
        return 2
    stack = Stack(args.profile, args.root)
    done = False
    try:
        began = time.monotonic()
        env = stack.start()
        created = ensure_databases(env.database_url, args.db)
        _log(_summary(stack, began, created))
        with _signals_blocked():
            code = _run_forwarding(command, {**os.environ, **env.as_environ()})
            if not args.keep:
                stack.stop()
            done = True
        return code
    finally:
        if not done and not args.keep:
            _stop(stack)


def _run_forwarding(command: list[str], env: dict[str, str]) -> int:
    """Run command to completion with our signals blocked, forwarding those the terminal did not send it too."""
    try:
        child = subprocess.Popen(command, env=env, preexec_fn=_unblock_signals)
    except OSError as exc:
        _log(f"cannot run {command[0]}: {exc}")
        return 127
    while True:
        info = signal.sigtimedwait(_SIGNALS, 0.2)
        # The terminal's Ctrl-C already reached the command (same process group); sending it again would make
        # pytest see a second interrupt in the middle of its teardown.
        if info is not None and info.si_code != _SI_KERNEL:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(info.si_signo)
        code = child.poll()
        if code is not None:
            return exit_status(code)


def _run_hook() -> RunHook | None:
    try:
        module = importlib.import_module(RUN_HOOK)
    except ModuleNotFoundError as exc:
        if exc.name != RUN_HOOK:
            raise
        return None
    hook = getattr(module, "main", None)
    if not callable(hook):
        raise DevStackError(f"{RUN_HOOK} has no main(stack_env) function")
    return cast(RunHook, hook)


def cmd_run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not acquire_run_lock(root):
        holder = run_lock_holder(root)
        print(f"a make run is already up (pid {holder if holder else '?'})", file=sys.stderr)
        return 1
    stack = Stack(args.profile, root)
    try:
        began = time.monotonic()
        env = stack.start()
        created = ensure_databases(env.database_url, RUN_DATABASES)
        _log(_summary(stack, began, created))
        hook = _run_hook()
        if hook is None:
            _log(f"{RUN_HOOK} does not exist yet; the servers stay up until Ctrl-C")
            _print_exports(env)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    signal.pause()
            return 0
        # ---- HOOK ------------------------------------------------------------------------------------------------
        # devstack/run.py: main(stack_env) migrates, seeds and runs the processes under a Supervisor; it
        # returns when they have stopped, with the exit status for `make run`. The servers are stopped below.
        return int(hook(env) or 0)
    finally:
        _stop(stack)
        release_run_lock(root)


def cmd_secrets(args: argparse.Namespace) -> int:
    """The NATS credentials of a compose deployment (docker-compose.yml's secrets); kept when they exist."""
    for path in write_deployment(args.directory):
        print(path, flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--profile", choices=PROFILES, default="dev", help="which var/<profile>/ to use (default: dev)")
    shared.add_argument("--root", type=Path, default=REPO_ROOT, help="directory holding var/ (default: this checkout)")
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description="Embedded PostgreSQL, Redis and NATS for development and tests."
    )
    commands = parser.add_subparsers(dest="command_name", required=True)

    up = commands.add_parser("up", parents=[shared], help="start (or reuse) the servers and print export lines")
    up.add_argument("--db", action="append", default=[], metavar="NAME", help="database to create if missing")
    up.set_defaults(handler=cmd_up)

    down = commands.add_parser("down", parents=[shared], help="stop the profile's servers")
    down.set_defaults(handler=cmd_down)

    run_cmd = commands.add_parser(
        "exec", parents=[shared], help="run a command with DATABASE_URL, REDIS_URL and NATS_URL set"
    )
    run_cmd.add_argument("--db", action="append", default=[], metavar="NAME", help="database to create if missing")
    run_cmd.add_argument("--keep", action="store_true", help="leave the servers running afterwards")
    run_cmd.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    run_cmd.set_defaults(handler=cmd_exec)

    run = commands.add_parser("run", parents=[shared], help="the servers plus the processes of `make run`")
    run.set_defaults(handler=cmd_run)

    secrets = commands.add_parser(
        "secrets", help="write the NATS seeds, authorization and route password docker-compose.yml reads"
    )
    secrets.add_argument("directory", type=Path, nargs="?", default=REPO_ROOT / "docker" / "secrets")
    secrets.set_defaults(handler=cmd_secrets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM and SIGHUP take the KeyboardInterrupt path, so the servers started so far are stopped.
    # Left alone when ignored, so `nohup` keeps working.
    previous = {
        sig: signal.signal(sig, _interrupt)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        return int(args.handler(args))
    except DevStackError as exc:
        _log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
