"""A user's Jupyter server, started without the start-up work it never uses.

``python -m grader.hub.spawn.singleuser [options]`` is JupyterHub's ``jupyterhub.singleuser`` (same
options, same server) with two pieces of work that libraries do eagerly at import deferred; the hub
starts every server this way (``grader.hub.spawn.servers.singleuser_command``). Measured with
``benchmarks/server_startup.py`` on the 2-core development machine (a student's server took
~3.2 CPU-seconds to start before; see docs/one-machine-isolation.md, "Start-up cost"):

* ``rfc3987_syntax`` compiles ~35 Lark Earley grammars when imported, ~1.2 CPU-seconds, and
  ``jsonschema._format`` imports it for its ``iri``/``iri-reference`` format checkers, which
  ``jupyter_events`` pulls in at every server start (jupyter_server issue #1559, jsonschema issue
  #1428). A stand-in module loads the real one at its first use instead: the checkers still work,
  and no schema a server validates at start uses those formats.
* ``jupyterlab.labapp`` asks ``node yarn config --json`` for the npm registry when imported
  (``get_app_version()`` builds ``AppOptions``), a node process of ~0.35 CPU-seconds. The registry
  is only read to build JupyterLab or to install extensions from npm, which a user's server never
  does (the Lab is built into the environment, which users cannot write); the server uses yarn's
  default registry without asking node. Where node is not on the PATH JupyterLab does the same.

Nothing else changes: the same extensions load, configured by ``JUPYTER_CONFIG_PATH`` as before.
One more thing is done before the server starts: SIGINT, which the hub sends first to stop a server,
takes the server's own orderly stop, as SIGTERM does (:func:`sigint_as_sigterm`).
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
import threading
import types

# The module, and the functions of it that others import by name (jsonschema._format:
# ``from rfc3987_syntax import is_valid_syntax``).
DEFERRED_MODULE = "rfc3987_syntax"
DEFERRED_FUNCTIONS = ("is_valid_syntax",)


def defer_module(name: str, functions: tuple[str, ...]) -> bool:
    """Put a stand-in for module ``name`` in ``sys.modules`` that imports the real one on first use.

    ``functions`` are the stand-in's own attributes: each imports the real module when called and
    calls the real function (so ``from name import f`` costs nothing until ``f`` runs). Reading any
    other attribute imports the real module and returns its attribute. False where the module is
    not installed or already imported: nothing to defer.
    """
    if name in sys.modules or importlib.util.find_spec(name) is None:
        return False
    stand_in = types.ModuleType(name, f"Stand-in for {name}, imported at its first use ({__name__}).")
    lock = threading.Lock()
    loaded: list[types.ModuleType] = []

    def real() -> types.ModuleType:
        with lock:
            if not loaded:
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]
                loaded.append(importlib.import_module(name))
        return loaded[0]

    def deferred(function: str):
        def call_real(*args, **kwargs):
            return getattr(real(), function)(*args, **kwargs)
        call_real.__name__ = call_real.__qualname__ = function
        return call_real

    for function in functions:
        setattr(stand_in, function, deferred(function))

    def other_attribute(attr: str):
        if attr.startswith("__"):  # import machinery and introspection: no reason to load it
            raise AttributeError(attr)
        return getattr(real(), attr)

    stand_in.__getattr__ = other_attribute  # PEP 562: called for attributes the stand-in lacks
    sys.modules[name] = stand_in
    return True


def skip_yarn_registry_lookup() -> bool:
    """Let JupyterLab use yarn's default npm registry instead of asking ``node yarn config``.

    ``jupyterlab.commands._yarn_config`` is what ``AppOptions.registry`` defaults from; it returns
    empty configurations itself where node is missing. False where this JupyterLab has no such
    function (then it asks node, as before: slower, not wrong).
    """
    try:
        from jupyterlab import commands
    except ImportError:
        return False
    if not callable(getattr(commands, "_yarn_config", None)):
        return False
    commands._yarn_config = lambda logger=None: {"yarn config": {}, "npm config": {}}
    return True


def defer_start_up_work() -> None:
    """Both deferrals, in this order: importing JupyterLab already imports jsonschema."""
    defer_module(DEFERRED_MODULE, DEFERRED_FUNCTIONS)
    skip_yarn_registry_lookup()


def sigint_as_sigterm() -> None:
    """SIGINT stops the server as SIGTERM does: its own orderly stop (kernels shut down, then exit).

    The hub stops a server with SIGINT first, then SIGTERM after ``interrupt_timeout`` (10 s).
    Jupyter Server handles SIGTERM, but SIGINT only with a terminal on stdin; otherwise (a hub
    run from a script or as a service) SIGINT is a ``KeyboardInterrupt`` through the event loop:
    kernels left to notice their parent died, and seconds more before the process ends. Before the
    server has set its SIGTERM handler, SIGINT stays a ``KeyboardInterrupt``."""
    def on_sigint(signum, frame):
        handler = signal.getsignal(signal.SIGTERM)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGTERM, frame)

    signal.signal(signal.SIGINT, on_sigint)


def kernel_culling_args(timeout: int, every: int, connected: bool) -> list[str]:
    """The server's options that shut down its idle kernels (none when ``timeout`` is 0).

    Jupyter Server never culls kernels by default: a forgotten notebook holds its kernel's memory
    (and a GPU's) until the whole server is stopped. A kernel running code is never culled
    (``cull_busy`` stays off); ``connected`` also culls kernels a browser tab is still open on."""
    if not timeout:
        return []
    return [f"--MappingKernelManager.cull_idle_timeout={int(timeout)}",
            f"--MappingKernelManager.cull_interval={int(every)}",
            f"--MappingKernelManager.cull_connected={bool(connected)}",
            "--MappingKernelManager.cull_busy=False"]


def main() -> None:
    sigint_as_sigterm()
    defer_start_up_work()
    from jupyterhub.singleuser import main as singleuser_main

    singleuser_main()


if __name__ == "__main__":
    main()
