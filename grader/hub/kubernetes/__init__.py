"""The hub on Kubernetes (Zero-to-JupyterHub): the chart values rendered from the platform YAML
(:mod:`.values`), the spawn form's profiles as KubeSpawner profiles (:mod:`.profiles`), and the
nbgrader configuration of users' pods (:mod:`.pod_nbgrader`). Beside :mod:`grader.hub.spawn`, the
one-machine spawner, not on top of it."""
