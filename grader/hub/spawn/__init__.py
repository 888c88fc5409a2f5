"""Starting users' servers on one machine: the profiles of the spawn form (:mod:`.profiles`), the
secure spawner with an account and a cgroup per user (:mod:`.local_spawner`, :mod:`.isolation`,
:mod:`.limits`), users' homes and the pre-spawn hook (:mod:`.homes`), and the single-user launcher
(:mod:`.singleuser`)."""
