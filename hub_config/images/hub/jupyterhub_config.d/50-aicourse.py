# Loaded by the Zero-to-JupyterHub chart's jupyterhub_config.py after the chart's own settings
# (KubeSpawner, proxy, database, culler, hub.services, hub.loadRoles): applies the rest of the
# platform settings, read from $AICOURSE_CONFIG (the platform.yaml mounted by hub.extraFiles) with
# the data folder $AICOURSE_DATA_DIR. The logic lives in grader/hub/kubernetes/values.py, where it is tested.
from grader.hub.kubernetes.values import apply_kubernetes_settings
from grader.hub.settings import load_settings

apply_kubernetes_settings(c, load_settings())  # noqa: F821 (c is the chart's config object)
