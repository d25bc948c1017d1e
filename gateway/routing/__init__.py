"""One request's way through the stages: key -> tenant (auth), body -> ChatRequest (normalize), and
the pipeline that calls classify, policy, the guards and the caller in order.

May import observe, upstream, state, policy, classify and the shared vocabulary (errors, request); never http."""
