"""A rollout's report: gathered from Temporal history and Prometheus ranges, drawn, written."""
