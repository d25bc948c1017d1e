"""The policy directory on disk: loading and checking it (YAML -> PolicySet) and running its example
cases. The policy itself stays pure (gateway.policy); this is its I/O.

May import policy, classify and state types; never upstream, routing, observe or http."""
