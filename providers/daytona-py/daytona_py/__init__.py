"""cbx's Daytona provider, written in Python.

The package holds the provider's logic; `app.py` beside it exports it through the bindings
componentize-py generates for `wit/provider.wit`'s `provider-world`. Every export is one request
(or one pagination walk) and a translation of its answer: the host owns credentials, retries,
polling and timeouts.

Modules:
- `config`: the options `describe` advertises, their validation, the per-invocation config.
- `wire`: Daytona's wire format: percent-encoding, label objects, lenient response parsing,
  state mapping and the SSH endpoint in `sshCommand`.
- `errors`: HTTP statuses and host failures to `provider-error`, `Retry-After` parsing.
- `client`: the lease operations as Daytona REST calls over a transport.
"""

NAME = "daytona-py"
VERSION = "0.1.0"
DESCRIPTION = "Daytona cloud sandboxes (provider written in Python)"
FEATURES = ["start", "stop", "touch", "labels"]
