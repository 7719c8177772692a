"""feeds.toml -> Config (frozen dataclasses), and editing feeds.toml in place (tomlkit).

model: the Config dataclasses and their defaults; load: reading and validating, with the
file, key and line of an error (layout: the file's lines and tables); edit: adding and
removing feeds in place; starter: the shipped feeds.toml `aggregator init` writes;
durations and identity: the values feeds.toml holds (durations; feed URLs, keys, names).
"""

from typing import TYPE_CHECKING, Any

from aggregator.config.durations import (
    duration_option,
    duration_value,
    format_duration,
    parse_duration,
)
from aggregator.config.identity import feed_key, is_http_url
from aggregator.config.load import (
    config_from_dict,
    init_command,
    load_config,
    require_alert_secrets,
)
from aggregator.config.model import (
    DEFAULT_INTERVAL,
    CommandConfig,
    Config,
    DigestConfig,
    EmailConfig,
    NotifyConfig,
    NotifyEmailConfig,
    PollConfig,
    ServeConfig,
    WatchConfig,
    WebhookConfig,
)
from aggregator.config.starter import SEEDS_URL, init_config

if TYPE_CHECKING:
    from aggregator.config.edit import (
        AddedFeeds,
        NewFeed,
        add_feed,
        add_feeds,
        refuse_configured,
        remove_feed,
        set_feed_urls,
    )

#: What `edit` gives, imported on first use: editing needs tomlkit (11-14 ms to import),
#: which a command that only reads feeds.toml (poll, run, digest, status) never loads.
_EDIT = frozenset(
    (
        "AddedFeeds",
        "NewFeed",
        "add_feed",
        "add_feeds",
        "refuse_configured",
        "remove_feed",
        "set_feed_urls",
    )
)


def __getattr__(name: str) -> Any:
    if name in _EDIT:
        from aggregator.config import edit

        return getattr(edit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "WebhookConfig",
    "WatchConfig",
    "NotifyEmailConfig",
    "NotifyConfig",
    "CommandConfig",
    "DEFAULT_INTERVAL",
    "SEEDS_URL",
    "AddedFeeds",
    "Config",
    "DigestConfig",
    "EmailConfig",
    "NewFeed",
    "PollConfig",
    "ServeConfig",
    "add_feed",
    "add_feeds",
    "config_from_dict",
    "duration_option",
    "duration_value",
    "feed_key",
    "format_duration",
    "init_command",
    "init_config",
    "is_http_url",
    "load_config",
    "require_alert_secrets",
    "parse_duration",
    "refuse_configured",
    "remove_feed",
    "set_feed_urls",
]
