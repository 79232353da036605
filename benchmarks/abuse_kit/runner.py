"""Run the project's real CLI (``pipeline.cli.main``, what ``python -m pipeline`` runs) as separate processes.

Why a fork server: one ``python -m pipeline`` start costs ~7 s on 2 cores (torch, sklearn and DuckDB imports),
and the abuse set starts the CLI hundreds of times. The server imports ``pipeline.cli`` once, in the project root
under test, then forks one child per attempt. A child is a real process: its own pid and process group, stdin,
stdout and stderr redirected to files, ``sys.argv`` set as the interpreter would set it, an uncaught exception
printed as a traceback with exit status 1 (as the interpreter does), atexit handlers run, and it can be SIGKILLed
at any moment. ``--spawn`` runs ``python -m pipeline`` instead, for anyone who wants no fork involved.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The server: reads one JSON request per line on fd 0, answers one JSON line on fd 1.
SERVER = r'''
import atexit, json, os, resource, signal, sys, threading, time, traceback
proto_in = os.fdopen(os.dup(0), "r")
proto_out = os.fdopen(os.dup(1), "w")
sys.argv = [os.path.join(os.getcwd(), "pipeline", "__main__.py")]
from pipeline.cli import main  # the import that costs seconds, paid once
# Modules the encoders import on first use (~15 s more per stage that loads one); importing is all that happens
# here: no model is built, no thread pool started, so every child still starts from a clean state.
for name in ("pipeline.encoders.offline", "transformers", "transformers.models.bert.modeling_bert",
             "transformers.models.auto.tokenization_auto", "torchvision.models"):
    try:
        __import__(name)
    except Exception:
        pass

def child(req):
    try:
        os.setpgid(0, 0)  # the parent does the same: whichever runs first, the child leads its own group
    except OSError:
        pass
    proto_in.close(); proto_out.close()
    for fd, path, flags in ((0, req["stdin"] or os.devnull, os.O_RDONLY),
                            (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    for key, value in req["env"].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if req["fsize"] is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
    sys.argv = sys.argv[:1] + req["argv"]
    code = 1
    try:
        try:
            code = main()
        except SystemExit as exc:
            code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            threading._shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)

for line in proto_in:
    req = json.loads(line)
    if req["op"] == "run":
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                child(req)
            finally:
                os._exit(1)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        answer = {"pid": pid}
    else:  # wait
        pid, deadline, timed_out = req["pid"], time.monotonic() + req["timeout"], False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        answer = {"status": status, "timed_out": timed_out}
    proto_out.write(json.dumps(answer) + "\n")
    proto_out.flush()
'''


@dataclass
class Result:
    """What one CLI run did."""

    argv: list[str]
    rc: int | None  # None when killed by a signal
    signal: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool


class Handle:
    """A started CLI process: wait for it, or kill it."""

    def __init__(self, runner: "Runner", pid: int, argv: list[str], out: Path, err: Path, popen=None) -> None:
        self.runner, self.pid, self.argv, self.out, self.err, self.popen = runner, pid, argv, out, err, popen
        self.started = time.monotonic()

    def kill(self) -> None:
        """SIGKILL the whole process group (loader workers included), like `kill -9` on a stage."""
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
                return
            except OSError:
                continue

    def wait(self, timeout: float) -> Result:
        status, timed_out = self.runner._wait(self, timeout)
        seconds = time.monotonic() - self.started
        if os.WIFSIGNALED(status):
            rc, sig = None, os.WTERMSIG(status)
        else:
            rc, sig = os.WEXITSTATUS(status), None
        read = lambda p: p.read_bytes().decode("utf-8", "backslashreplace") if p.exists() else ""  # noqa: E731
        return Result(self.argv, rc, sig, read(self.out), read(self.err), seconds, timed_out)


class Runner:
    """Starts CLI runs in the project root under test; ``spawn`` chooses `python -m pipeline` per run."""

    def __init__(self, project: Path, scratch: Path, *, spawn: bool = False) -> None:
        self.project, self.scratch, self.spawn = project, scratch, spawn
        self._count = 0
        self._server: subprocess.Popen | None = None
        self.env = {**os.environ, "PYTHONPATH": str(project), "PYTHONDONTWRITEBYTECODE": "1",
                    "STUDIO_DATA": "", "PYTHONHASHSEED": "0"}
        self.env.pop("STUDIO_USERS", None)
        self.before_start = lambda: None  # the judge closes its database connections here

    def _ensure_server(self) -> subprocess.Popen:
        if self._server is None or self._server.poll() is not None:
            log = open(self.scratch / "server.log", "ab")
            self._server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=self.project, env=self.env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        return self._server

    def _ask(self, request: dict) -> dict:
        server = self._ensure_server()
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died; see {self.scratch / 'server.log'}")
        return json.loads(line)

    def start(self, argv: list[str | bytes], *, stdin: bytes | None = None, env: dict[str, str | None] | None = None,
              fsize: int | None = None) -> Handle:
        """Start ``python -m pipeline ARGV``; bytes arguments reach the CLI as the interpreter decodes argv."""
        self.before_start()
        self._count += 1
        base = self.scratch / f"run{self._count}"
        out, err = base.with_suffix(".out"), base.with_suffix(".err")
        stdin_path = None
        if stdin is not None:
            stdin_path = base.with_suffix(".in")
            stdin_path.write_bytes(stdin)
        args = [os.fsdecode(a) for a in argv]
        shown = [a if isinstance(a, str) else repr(a) for a in argv]
        if not self.spawn:
            answer = self._ask({"op": "run", "argv": args, "stdout": str(out), "stderr": str(err),
                                "stdin": str(stdin_path) if stdin_path else None, "env": env or {}, "fsize": fsize})
            return Handle(self, answer["pid"], shown, out, err)
        child_env = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = value

        def limits() -> None:
            os.setsid()
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                import resource
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        with open(stdin_path or os.devnull, "rb") as fin, open(out, "wb") as fout, open(err, "wb") as ferr:
            popen = subprocess.Popen([sys.executable, "-m", "pipeline", *[os.fsencode(a) for a in args]],
                                     cwd=self.project, env=child_env, stdin=fin, stdout=fout, stderr=ferr,
                                     preexec_fn=limits)
        return Handle(self, popen.pid, shown, out, err, popen)

    def _wait(self, handle: Handle, timeout: float) -> tuple[int, bool]:
        if handle.popen is None:
            answer = self._ask({"op": "wait", "pid": handle.pid, "timeout": timeout})
            return answer["status"], answer["timed_out"]
        try:
            handle.popen.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            handle.kill()
            handle.popen.wait()
            timed_out = True
        code = handle.popen.returncode  # -N when killed by signal N: turn it back into a wait status
        return (-code if code < 0 else code << 8), timed_out

    def cli(self, *argv: str | bytes, timeout: float = 120, **kwargs) -> Result:
        return self.start(list(argv), **kwargs).wait(timeout)

    def python(self, code: str, *args: str, timeout: float = 60) -> Result:
        """Run a Python snippet in the project root (for checks the CLI cannot reach: the dashboard's claim)."""
        self.before_start()
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-c", code, *args], cwd=self.project, env=self.env,
                                  capture_output=True, timeout=timeout)
            return Result(["python", "-c", "..."], done.returncode, None,
                          done.stdout.decode(errors="backslashreplace"), done.stderr.decode(errors="backslashreplace"),
                          time.monotonic() - started, False)
        except subprocess.TimeoutExpired as exc:
            return Result(["python", "-c", "..."], None, signal.SIGKILL, (exc.stdout or b"").decode(errors="replace"),
                          (exc.stderr or b"").decode(errors="replace"), time.monotonic() - started, True)

    def close(self) -> None:
        if self._server is not None and self._server.poll() is None:
            self._server.stdin.close()
            try:
                self._server.wait(10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
