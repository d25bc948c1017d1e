"""Side channels: what a request did (the record), Prometheus metrics, the audit trail, logs.

Nothing here feeds routing. May import upstream (attempt and stream types), policy and the shared
vocabulary; never http or routing."""
