"""The provider's options, their validation and the per-invocation configuration."""

import re
from dataclasses import dataclass

from wit_world.imports import types

from .errors import invalid_config

# Default OS user inside the sandbox.
DEFAULT_USER = "daytona"
# Default work root, relative to the SSH user's home.
DEFAULT_WORK_ROOT = "cbx"
# Default lifetime of minted SSH access, in minutes.
DEFAULT_SSH_ACCESS_MINUTES = 60
# Longest SSH access lifetime accepted, in minutes (one day, as Daytona's dashboard allows).
MAX_SSH_ACCESS_MINUTES = 1440
# Default minutes a stopped sandbox waits before Daytona archives it (7 days).
DEFAULT_AUTO_ARCHIVE_MINUTES = 10080
# Default of option auto-delete-minutes: the lease's TTL.
DEFAULT_AUTO_DELETE = "ttl"
# Daytona keeps intervals as 32-bit signed minutes.
I32_MAX = 2**31 - 1
# Largest value of a WIT u32 (autoArchiveInterval is one).
U32_MAX = 2**32 - 1
# Longest OS user name accepted (Linux's `useradd` limit).
MAX_USER_LEN = 32

_USER = re.compile(r"[a-z_][a-z0-9_-]*")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def option_specs():
    """The options `describe` advertises, each with its default."""

    def spec(name, kind, default, description):
        return types.OptionSpec(name=name, description=description, kind=kind, default=default)

    text, integer = types.OptionKind.TEXT, types.OptionKind.INTEGER
    return [
        spec(
            "snapshot",
            text,
            "",
            "Snapshot to create sandboxes from; it sets the size (daytona-small, daytona-medium, "
            "daytona-large). Empty: the account's default snapshot",
        ),
        spec(
            "target",
            text,
            "",
            "Region to create sandboxes in, e.g. us or eu. Empty: the organization's default region",
        ),
        spec("user", text, DEFAULT_USER, "OS user that runs in the sandbox"),
        spec(
            "work-root",
            text,
            DEFAULT_WORK_ROOT,
            "Where leases keep their work directories; a relative path is relative to the SSH "
            "user's home",
        ),
        spec(
            "ssh-access-minutes",
            integer,
            str(DEFAULT_SSH_ACCESS_MINUTES),
            f"Lifetime of minted SSH access in minutes, 1 to {MAX_SSH_ACCESS_MINUTES}",
        ),
        spec(
            "auto-archive-minutes",
            integer,
            str(DEFAULT_AUTO_ARCHIVE_MINUTES),
            "Minutes a stopped sandbox waits before Daytona archives it; 0 means Daytona's maximum",
        ),
        spec(
            "auto-delete-minutes",
            text,
            DEFAULT_AUTO_DELETE,
            "Minutes after a sandbox stops before Daytona deletes it on its own: `ttl` (the "
            "lease's TTL), `never`, or a number",
        ),
    ]


def auth_kind(credential_names):
    """The credential kind as far as the attached credentials' names tell: `api-key`, `jwt` or
    `none`. An API key wins over a JWT."""
    names = [n.lower() for n in credential_names]
    if not names:
        return "none"
    if any("jwt" in n for n in names) and not any("key" in n for n in names):
        return "jwt"
    return "api-key"


@dataclass(frozen=True)
class Config:
    """The validated settings of one invocation."""

    # The `api` endpoint's base URL, without a trailing `/`.
    base: str
    # Snapshot name or id; empty for the account's default.
    snapshot: str
    # Region name or id; empty for the organization's default.
    target: str
    # OS user in the sandbox.
    user: str
    # Where leases keep their work directories.
    work_root: str
    # Lifetime of minted SSH access, in minutes.
    ssh_access_minutes: int
    # Minutes a stopped sandbox waits before it is archived (0: Daytona's maximum).
    auto_archive_minutes: int
    # When Daytona deletes a stopped sandbox on its own: "ttl", "never" or minutes (>= 1).
    auto_delete: object
    # The credential the host attaches: `api-key`, `jwt` or `none`.
    auth: str

    @staticmethod
    def from_settings(settings):
        """Validates the host's settings; raises `invalid-config` for bad values."""
        base = (_lookup(settings.endpoints, "api") or "").strip()
        if not base:
            raise invalid_config("the manifest grants no `api` endpoint")
        if base.endswith("/"):
            base = base[:-1]

        def opt(name):
            value = _lookup(settings.options, name)
            return None if value is None else value.strip()

        user = opt("user")
        if user is None:
            user = DEFAULT_USER
        if not (_USER.fullmatch(user) and len(user) <= MAX_USER_LEN):
            raise invalid_config(
                f"option user must be a Linux user name: up to {MAX_USER_LEN} characters, a "
                "lowercase letter or `_` followed by lowercase letters, digits, `_` or `-`, "
                f"got {user!r}"
            )
        work_root = opt("work-root")
        if work_root is None:
            work_root = DEFAULT_WORK_ROOT
        if not work_root or any(_is_control(c) for c in work_root):
            raise invalid_config(
                "option work-root must be a non-empty path without control characters"
            )

        raw = opt("ssh-access-minutes")
        ssh_access_minutes = DEFAULT_SSH_ACCESS_MINUTES
        if raw is not None:
            minutes = _integer(raw)
            if minutes is None or not 1 <= minutes <= MAX_SSH_ACCESS_MINUTES:
                raise invalid_config(
                    f"option ssh-access-minutes must be between 1 and {MAX_SSH_ACCESS_MINUTES} "
                    f"minutes, got {raw}"
                )
            ssh_access_minutes = minutes

        raw = opt("auto-archive-minutes")
        auto_archive_minutes = DEFAULT_AUTO_ARCHIVE_MINUTES
        if raw is not None:
            minutes = _integer(raw)
            if minutes is None or not 0 <= minutes <= U32_MAX:
                raise invalid_config(
                    "option auto-archive-minutes must be 0 (Daytona's maximum) or a whole number "
                    f"of minutes up to {U32_MAX}, got {raw}"
                )
            auto_archive_minutes = minutes

        auto_delete = _auto_delete(opt("auto-delete-minutes") or DEFAULT_AUTO_DELETE)
        return Config(
            base=base,
            snapshot=opt("snapshot") or "",
            target=opt("target") or "",
            user=user,
            work_root=work_root,
            ssh_access_minutes=ssh_access_minutes,
            auto_archive_minutes=auto_archive_minutes,
            auto_delete=auto_delete,
            auth=auth_kind(settings.credentials),
        )

    def auto_delete_interval(self, ttl_minutes):
        """The `autoDeleteInterval` for a lease of `ttl_minutes` (-1: never)."""
        if self.auto_delete == "ttl":
            return min(max(ttl_minutes, 1), I32_MAX)
        if self.auto_delete == "never":
            return -1
        return self.auto_delete

    def profile(self):
        """The profile `configure` reports: the work root and the effective settings."""
        return types.Profile(
            work_root=self.work_root,
            summary=[
                ("api", self.base),
                ("snapshot", self.snapshot or "account default"),
                ("target", self.target or "organization default"),
                ("user", self.user),
                ("auth", self.auth),
            ],
        )


def _auto_delete(raw):
    """Option auto-delete-minutes: `ttl`, `never` or 1 to 2147483647 minutes."""
    if raw in ("ttl", "never"):
        return raw
    minutes = _integer(raw)
    if minutes is None or not 1 <= minutes <= I32_MAX:
        raise invalid_config(
            "option auto-delete-minutes must be `ttl` (the lease's TTL), `never`, or a whole "
            f"number of minutes from 1 to {I32_MAX} after the sandbox stops, got {raw!r} (0 "
            "would make Daytona delete a lease the moment it stops for being idle)"
        )
    return minutes


def _lookup(pairs, name):
    """The value of `name` in a list of pairs (the last one wins), or None."""
    found = None
    for key, value in pairs:
        if key == name:
            found = value
    return found


def _integer(raw):
    """A base-10 integer (the host has checked the form already), or None."""
    return int(raw) if _INTEGER.fullmatch(raw) else None


def _is_control(c):
    """Whether `c` is a control character (C0, DEL or C1), as Rust's `char::is_control`."""
    code = ord(c)
    return code < 0x20 or 0x7F <= code <= 0x9F
