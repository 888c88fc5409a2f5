# nbgrader's settings in every user's pod, copied by Dockerfile.cpu and Dockerfile.gpu into
# /usr/local/etc/jupyter/ (on Jupyter's config path, under the user's own ~/.jupyter). On a cluster
# the hub writes nothing into homes; this file reads the HTTP exchange's address from
# $GRADER_EXCHANGE_URL, which the chart puts in every user's pod (singleuser.extraEnv in
# hub_config/helm/platform.values.yaml). The logic lives in grader/hub/kubernetes/pod_nbgrader.py, where it is tested.
from grader.hub.kubernetes.pod_nbgrader import apply_pod_nbgrader_config

apply_pod_nbgrader_config(get_config())  # noqa: F821 (nbgrader's config loader provides get_config)
