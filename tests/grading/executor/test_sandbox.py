"""The executor's sandbox and integrity checks, one property per test, on a real zygote.

What student code can see (files, environment, processes, network), what it can change of the
grader (hooks, libraries, the channel to the grader) and what it leaves behind. The red-team
suite (test_grading_attacks.py) attacks the whole grader; this file pins each mechanism down.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from grader.grading.executor.client import ExecutionRequest, Limits, Zygote, claim_sandbox_slots

pytestmark = pytest.mark.slow
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces, cgroups and users need root")
LIMITS = Limits(cell_timeout=20, submission_timeout=60, memory_bytes=300 << 20, kill_grace=2)
REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def zygote():
    claim = claim_sandbox_slots(1)
    os.environ["GRADER_EXCHANGE_TOKEN"] = "secret-canary-7f3a"
    try:
        with Zygote(["numpy"]) as running:
            running.slot = claim.slots[0]
            yield running
    finally:
        del os.environ["GRADER_EXCHANGE_TOKEN"]
        claim.release()


def run(zygote, *cells, trusted=None, files=None):
    request = ExecutionRequest(cells=list(cells), slot=zygote.slot, trusted=trusted, files=files or {})
    return zygote.execute(request, LIMITS)


def stdout(result, cell=0) -> str:
    return "".join(o.get("text", "") for o in result.cells[cell].outputs if o.get("output_type") == "stream")


def errors(result, cell) -> list[str]:
    return [o["ename"] for o in result.cells[cell].outputs if o.get("output_type") == "error"]


def test_the_environment_holds_only_allow_listed_variables(zygote):
    result = run(zygote, "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ', 'rb').read())")
    assert "GRADER_EXCHANGE_TOKEN" not in stdout(result)
    assert "secret-canary-7f3a" not in str(result.cells)


@root_only
def test_the_filesystem_is_an_allow_list(zygote):
    probes = [str(REPOSITORY / "assignments" / "source"), str(REPOSITORY / "README.md"), "/etc/shadow",
              "/home", "/var", "/srv", "/opt", "/usr/local", "/sys"]
    code = "import os\nfor path in %r:\n    print(path, os.path.exists(path))" % probes
    result = run(zygote, code, "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('/')))")
    lines = (stdout(result, 0) + stdout(result, 1)).splitlines()
    assert lines[:len(probes)] == [f"{path} False" for path in probes]
    assert lines[len(probes)] == "/submission"
    # Only what Python and the system libraries need: no /home, /var, /srv, /opt.
    assert set(eval(lines[-1])) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "root", "sbin", "submission",
                                    "tmp", "usr", *Path(REPOSITORY).parts[1:2]}


@root_only
def test_no_network_and_only_its_own_processes(zygote):
    result = run(zygote, "import socket, os\n"
                         "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2)\nexcept OSError as e:\n    print('refused', e.errno)\n"
                         "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    text = stdout(result)
    assert "refused" in text
    assert "pids [1]" in text


@root_only
def test_dev_shm_counts_against_the_memory_limit(zygote):
    # 400 MB into /dev/shm: past the 300 MiB limit, whatever the process's own heap.
    # 250 MB into /dev/shm: the tmpfs (256 MiB) takes it, the memory limit (300 MiB) does not.
    result = run(zygote, "data = b'x' * (1 << 20)\nwith open('/dev/shm/fill', 'wb') as f:\n    for _ in range(250):\n        f.write(data)",
                 "import numpy\nheld = numpy.ones(15 << 20)\nprint('still here')")
    assert result.status == "memory", result.reason
    assert "still here" not in str(result.cells)


def test_nothing_is_left_in_tmp(zygote, tmp_path, monkeypatch):
    # The grader's temporary folder, private to this test (other gradings may run beside it).
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    result = run(zygote, "open('/tmp/x', 'w').write('x')\nopen('/dev/shm/y', 'w').write('y')\nopen('left.txt', 'w').write('z')")
    assert result.status == "ok", result.reason
    assert list(private.iterdir()) == []


def test_files_the_notebook_writes_come_back(zygote):
    result = run(zygote, "open('results.csv', 'w').write('a,b')\nopen('data.txt', 'w').write('same')", files={"data.txt": b"same"})
    assert result.files == {"results.csv": b"a,b"}


def test_a_patched_library_is_restored_before_each_instructor_cell_and_flagged(zygote):
    result = run(zygote, "import numpy as np\nnp.allclose = lambda *a, **k: True", "import numpy as np\nassert np.allclose(1, 2)",
                 trusted=[False, True])
    assert errors(result, 1) == ["AssertionError"]
    assert any("numpy.allclose was replaced" in flag.reason for flag in result.flags)


def test_a_patched_class_is_restored(zygote):
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "async def run_code(self, code_obj, result=None, *, async_=False):\n    return False\n"
            "InteractiveShell.run_code = run_code")
    result = run(zygote, code, "assert False", trusted=[False, True])
    assert errors(result, 1) == ["AssertionError"]
    assert any("InteractiveShell.run_code" in flag.reason for flag in result.flags)


def test_shell_hooks_are_removed_before_instructor_cells(zygote):
    code = ("ip = get_ipython()\n"
            "ip.events.register('post_run_cell', lambda result: None)\n"
            "ip.set_custom_exc((AssertionError,), lambda *a, **k: None)\n"
            "ip.input_transformers_post.append(lambda lines: ['try:\\n'] + ['    ' + l for l in lines] + ['except BaseException:\\n    pass\\n'])")
    result = run(zygote, code, "assert False", trusted=[False, True])
    assert errors(result, 1) == ["AssertionError"]
    reasons = " ".join(flag.reason for flag in result.flags)
    assert "post_run_cell" in reasons and "custom_exceptions" in reasons and "input_transformers_post" in reasons


def test_tracing_and_heap_walking_are_refused(zygote):
    result = run(zygote, "import sys\nsys.settrace(lambda *a: None)", "import gc\ngc.get_objects()")
    assert errors(result, 0) == ["PermissionError"] and errors(result, 1) == ["PermissionError"]
    assert sum("refused" in flag.reason for flag in result.flags) == 2


def test_a_muted_traceback_still_fails_the_cell(zygote):
    # A hook that mutes the display *during* the instructor's cell (after the restore ran).
    code = ("class Ghost(int):\n    def __del__(self):\n        get_ipython()._showtraceback = lambda *a: None\n"
            "def square(x):\n    return Ghost(x + 1)")
    result = run(zygote, code, "assert square(3) == 9", trusted=[False, True])
    assert errors(result, 1) == ["AssertionError"]
    assert any("traceback display was suppressed" in flag.reason for flag in result.flags)


def test_reading_the_calling_tests_frame_is_refused(zygote):
    code = "import sys\ndef square(x):\n    return sys._getframe(1).f_lineno"
    result = run(zygote, code, "assert square(3) == 9", trusted=[False, True])
    assert errors(result, 1) == ["PermissionError"]


def test_writing_to_the_output_channel_cannot_end_a_cell(zygote):
    # Every descriptor number above 2 gets a fake "result"; the grader's own connection lives on a
    # random one, so whichever it is, the forgery lacks the cell's nonce.
    code = ("import os, json, struct\n"
            "payload = json.dumps({'type': 'result', 'nonce': 'guess', 'execution_count': 2}).encode()\n"
            "for fd in range(3, 1024):\n"
            "    try:\n        os.write(fd, struct.pack('!Q', len(payload)) + payload)\n    except OSError:\n        pass")
    result = run(zygote, code, "assert False", trusted=[False, True])
    assert errors(result, 1) == ["AssertionError"]
    assert result.flags, "the forged messages are flagged"


def test_honest_code_is_never_flagged(zygote):
    cells = [
        "import numpy as np\nimport warnings\nfrom tqdm.auto import tqdm\n",
        "def square(x):\n    for _ in tqdm(range(3)):\n        pass\n    warnings.warn('just so', UserWarning)\n    return np.asarray(x) ** 2",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nopen('log.txt', 'a').write('done')",
        "assert square(3) == 9\nassert np.allclose(square(np.arange(3)), [0, 1, 4])",
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    import traceback\n    traceback.print_exc()",
    ]
    result = run(zygote, *cells, trusted=[True, False, False, True, False])
    assert result.status == "ok", result.reason
    assert result.flags == []
    assert errors(result, 3) == []


def test_an_execute_result_slipped_before_an_error_does_not_score(zygote):
    # A destructor run while the failing assert unwinds calls the real displayhook first.
    code = ("import sys\nclass Answer(int):\n    def __del__(self):\n        sys.displayhook('ok')\n"
            "def square(x):\n    return Answer(x + 1)")
    result = run(zygote, code, "assert square(3) == 9", trusted=[False, True])
    assert [o["output_type"] for o in result.cells[1].outputs] == ["error"]
    assert any("execute_result" in flag.reason and "dropped" in flag.reason for flag in result.flags)


def test_an_execute_result_in_a_cell_without_a_final_expression_is_dropped(zygote):
    # A partial-credit number forged into a passing instructor cell that displays nothing itself.
    code = "import sys\nclass Answer(int):\n    def __del__(self):\n        sys.displayhook(0.5)\ndef square(x):\n    return Answer(x * x)"
    result = run(zygote, code, "assert square(3) == 9", "square(2) * 1.0", trusted=[False, True, True])
    assert result.cells[1].outputs == []
    assert [o["data"]["text/plain"] for o in result.cells[2].outputs] == ["4.0"]
    assert any("does not end with an expression" in flag.reason for flag in result.flags)
