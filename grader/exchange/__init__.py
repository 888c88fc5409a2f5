"""The nbgrader exchange over HTTP, in two halves that share only the wire format:
:mod:`.plugins` (nbgrader exchange classes, run in users' servers and the formgrader) and
:mod:`.service` (the hub service that stores the files and decides who may do what)."""
