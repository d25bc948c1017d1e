"""The ``gateway`` command: serve, policy check|explain, router train|score|eval.

The top layer: may import anything."""
