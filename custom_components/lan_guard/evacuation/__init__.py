"""Evacuation mode: isolate appliances and the culprit, then restore service.

``machine`` is the pure state machine (no Home Assistant), ``runner`` performs what it asks
(appliances, quarantine ``backends``, storage) and tells the owner in the words of ``texts``;
``options`` is its section of the options form, ``services`` its actions, ``protected`` the
hosts it never isolates.
"""
