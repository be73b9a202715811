"""Domain: incidents, timeline, approvals, prompts, alerts, scribe, post-mortem, PagerDuty rules,
and the ports (Protocols) adapters implement. No vendor SDK, no Block Kit.
"""
