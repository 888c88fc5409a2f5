"""Run students' notebook cells fast and safely.

A *zygote* process imports the heavy libraries (numpy, torch, tensorflow, IPython) once; every
submission is a fork of it, so a submission pays milliseconds instead of a kernel start and
imports. The forked child drops privileges and sets its limits before it runs any student code,
executes cells one at a time as the grader sends them (so future test cells are never in its
memory), and records outputs in the nbformat shape a Jupyter kernel would have produced.

- :mod:`.protocol`   length-prefixed JSON messages on a socket
- :mod:`.cellrunner` an IPython shell that records outputs as nbformat outputs (child side)
- :mod:`.sandbox`    privilege drop, resource limits, hiding course files (child side)
- :mod:`.zygote`     the pre-importing forking server
- :mod:`.client`     the grader side: starts the zygote, sends cells, enforces limits
- :mod:`.limits`     what one submission may use (time, memory, output, processes)
"""
