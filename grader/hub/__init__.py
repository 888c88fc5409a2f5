"""Hub-side platform code: settings, the authenticator, spawn hooks and the configuration that
``hub_config/jupyterhub_config.py`` applies. Nothing here grades."""
