"""Learning from the owner's labels: features of an event, an online model, a classifier.

Pure Python + numpy on purpose (no Home Assistant, no sensor_agent): the integration calls it,
the unit tests and ``benchmarks/classifier_eval.py`` run it on their own.
"""
