"""The types of a running rollout or release: what the workflows carry, record and answer.

Their inputs (``inputs.py``, ``release.py``), the progress in parts (``progress.py``) and
the status, commands and verdicts (``state.py``, ``checks.py``), the messages
(``notices.py``), a target's lease (``leases.py``), the typed names every workflow answers
to (``messages.py``), the search attributes (``visibility.py``), the metric names
(``metric_names.py``), what `rollout status` reads of the router (``traffic.py``) and the
history version (``versions.py``).
"""
