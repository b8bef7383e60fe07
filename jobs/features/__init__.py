"""Behavioural features. Each family defines, in its own module, its daily tile (``*_day_state``: clean rows ->
one row per user, input partition and local day) and its fold (``*_from_state``: tiles -> one row per user).
``jobs.features.state_profiles`` assembles the families into profiles; there is no other path from rows.
"""
