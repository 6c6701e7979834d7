"""Federated learning on the agent's node: the owner's labelled examples and a Flower client.

Home Assistant cannot run Flower (it pins older cryptography and requests than flwr needs), so
the site's edge computer, the agent's node, does: the integration sends each labelled example
(a versioned feature vector and its label, nothing else) to its agent over the site's own broker,
on a topic no bridge forwards; the agent keeps them (:mod:`.examples`) and trains the shared
model on them when the provider's Flower server asks (:mod:`.client_app`). Only weights, their
precision and counts leave the node, never an example.

``logreg`` is pure numpy and always importable; the Flower parts need the ``federation`` extra.
"""
