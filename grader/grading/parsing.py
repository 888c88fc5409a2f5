"""Python source to an AST, one thread at a time.

CPython 3.11 keeps the AST converter's recursion depth in state shared by all threads, so two
threads building ASTs at once can fail with "SystemError: AST constructor recursion depth
mismatch" (python/cpython gh-106905, fixed in 3.12). Grading threads do it at once (the static
scan of one submission, the output shaping of another): an honest submission failed to grade in
CI that way. Every AST the grading process builds goes through this lock; each takes microseconds.
"""

from __future__ import annotations

import threading

AST_LOCK = threading.Lock()
