"""Who may move production forward, and when: approvers and signed commands
(``approvals.py``), release windows (``windows.py``) and freezes (``freezes.py``), and the
signatures a hook's requests carry (``hook_signing.py``).
"""
