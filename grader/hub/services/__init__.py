"""The hub-managed services, one module each, each giving the ``c.JupyterHub.services`` entries
(and roles) it needs: :mod:`.exchange` (the HTTP exchange), :mod:`.culler` (idle culler),
:mod:`.seats` (seats service and its spawn checks), :mod:`.tls_front` (Caddy). The courses'
formgraders are in :mod:`grader.hub.config`."""
