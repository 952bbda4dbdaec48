"""Standard first actions per fault kind (the kinds of ``opsforge_core.agents.faultkind``).

The offline synthesis recommends these actions, and the LLM prompt shows them as the baseline
an answer may refine. They are read-only diagnostics first, then the usual mitigation; an
operator carries each one out, OpsForge runs none of them.
"""

from __future__ import annotations

RUNBOOKS: dict[str, list[str]] = {
    "cpu_saturation": [
        "Check CPU utilisation and run queue per instance of {service}; find the hot process.",
        "Scale {service} out (add instances) or up while the cause is found.",
        "Look for a traffic spike, a retry storm or a recent change that adds work per request.",
    ],
    "memory_leak": [
        "Compare resident memory of {service} instances against their age since last restart.",
        "Take a heap dump or memory profile of one instance before restarting it.",
        "Restart the instances of {service} in a rolling way to buy time; "
        "roll back the change that began the growth.",
    ],
    "disk_filling": [
        "Find the largest and fastest-growing paths on {service}'s volumes (logs, temp, data).",
        "Free space safely: rotate or compress logs, prune temporary files; expand the volume.",
        "Fix the writer that fills the disk (log level, retention, a stuck cleanup job).",
    ],
    "db_connection_pool_exhaustion": [
        "Check pool usage and wait time of {service} and the database's active connections.",
        "Look for long-running or blocked queries and for connections leaked on error paths.",
        "Raise the pool size or the database connection limit only after the leak is ruled out.",
    ],
    "bad_deploy": [
        "Identify the latest deploy or config change of {service} and its start time.",
        "Roll back {service} to the last known good version.",
        "Compare error rates and logs before and after the deploy to confirm the cause.",
    ],
    "network_latency": [
        "Measure latency between {service} and its callers and dependencies (per hop).",
        "Check for packet loss, saturated links, DNS delays and cross-zone traffic.",
        "Shift traffic away from the degraded zone or path; tune timeouts and retries.",
    ],
    "cache_failure": [
        "Check the health, hit ratio and evictions of the cache used by {service}.",
        "Protect the backing store from the miss storm: rate limit, request coalescing.",
        "Restore or fail over the cache node, then warm the hottest keys.",
    ],
    "queue_backlog": [
        "Check queue depth, age of the oldest message and consumer throughput for {service}.",
        "Scale the consumers of {service}; look for poison messages and failing handlers.",
        "Throttle the producers if the backlog keeps growing.",
    ],
    "unknown": [
        "Review the alerts and anomalies of {service} around the incident start.",
        "Check recent deploys and configuration changes of {service} and its dependencies.",
        "Escalate to the owning team of {service} with the evidence listed here.",
    ],
}


def actions_for(fault_kind: str, service: str) -> list[str]:
    """Return the runbook actions of ``fault_kind`` for ``service`` (``unknown``'s if unlisted)."""
    steps = RUNBOOKS.get(fault_kind) or RUNBOOKS["unknown"]
    return [step.format(service=service or "the affected service") for step in steps]
