"""cbx's Daytona provider in Python: the component's exports.

componentize-py generates `wit_world` from `wit/provider.wit` (world `provider-world`) while it
builds the component, and calls the `Provider` class below for the `provider` export. An export
fails by raising `componentize_py_types.Err(<provider-error case>)`, which becomes the `error`
case of the WIT `result`.

Everything this module and its package import is loaded while componentize-py pre-initialises
the component, so at run time nothing needs a file: the host links WASI deny-by-default (no
files, environment, arguments or sockets).
"""

from wit_world import exports

import daytona_py
from daytona_py.client import Daytona, HostTransport
from daytona_py.config import Config, option_specs
from daytona_py.errors import invalid_config
from wit_world.imports import types

# The configuration of the current invocation. The host calls `configure` once per instance,
# before any other operation; an instance lives for one CLI invocation.
_config = None


def _client():
    """A client for the stored configuration; `invalid-config` if `configure` was not called."""
    if _config is None:
        raise invalid_config("configure was not called")
    return Daytona(_config, HostTransport())


class Provider(exports.Provider):
    """The `provider` export: each method is one Daytona request and its translation."""

    def describe(self):
        return types.ProviderInfo(
            name=daytona_py.NAME,
            version=daytona_py.VERSION,
            description=daytona_py.DESCRIPTION,
            options=option_specs(),
            features=list(daytona_py.FEATURES),
        )

    def configure(self, settings):
        global _config
        cfg = Config.from_settings(settings)
        _config = cfg
        return cfg.profile()

    def doctor(self):
        return _client().doctor()

    def create(self, request):
        return _client().create(request)

    def get(self, id):
        return _client().get(id)

    def list(self, labels):
        return _client().list(labels)

    def start(self, id):
        return _client().start(id)

    def stop(self, id):
        return _client().stop(id)

    def delete(self, id):
        _client().delete(id)

    def set_labels(self, id, labels):
        return _client().set_labels(id, labels)

    def touch(self, id):
        _client().touch(id)

    def mint_ssh_access(self, id):
        return _client().mint_ssh_access(id)
