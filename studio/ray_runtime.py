"""Connecting to Ray: a cluster when ``RAY_ADDRESS`` says so, else a local one.

The local one binds to 127.0.0.1, sends no usage stats and starts no dashboard unless
asked (job submission needs it; see cluster/README.md). Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from studio.settings import Settings


def ensure_ray(settings: Settings) -> dict[str, Any]:
    """Start or join Ray once per process; return what we connected to."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Ray turns "127.0.0.1" into the machine's routable address unless told this is a
        # single-machine instance; this switch (read when ray is imported) makes every Ray
        # process of a local instance listen on loopback only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return {"address": "existing", "local": False}
    if not settings.ray_logs:
        # Ray logs its banners ("Token authentication is enabled ...") as warnings through
        # Python logging; they are Ray's business, not the user's (STUDIO_RAY_LOGS=1 shows them).
        logging.getLogger("ray").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, log_to_driver=settings.ray_logs)
        return {"address": address, "local": False}
    kwargs: dict[str, Any] = dict(
        include_dashboard=settings.ray_dashboard,
        log_to_driver=settings.ray_logs,
        configure_logging=settings.ray_logs,
    )
    if settings.ray_dashboard:
        kwargs["dashboard_host"] = "127.0.0.1"
    if settings.ray_num_cpus:
        kwargs["num_cpus"] = settings.ray_num_cpus
    ray.init(**kwargs)
    return {"address": "local", "local": True}


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))
