"""Alerts that roll back: Alertmanager's webhook turned into operator commands.

``rollout alerts serve`` runs an HTTP receiver (``receiver``) that Alertmanager posts its
notifications to (``payload``), over plain TCP or TLS with a bound on slow headers
(``listen``); rules map an alert's labels to an action (``rules``), and plain decisions
(``decide``) say whether a firing alert acts on its service's rollout: one that started
after the rollout first shifted traffic (``first_shift`` reads when from its history). The
command goes the way the CLI's does, as the user ``alertmanager``, with the alert's name,
summary and link as the reason.
"""
