"""Side effects of a rollout: traffic routers, metric providers and the gate judge, notifiers.

The Temporal activities that wrap them live in ``activities.rollout``.
"""
