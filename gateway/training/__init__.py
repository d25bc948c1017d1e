"""Training, fitting and evaluating the learned router, and its command line (numpy and scipy,
the router extra). Scoring (gateway.classify) never imports this.

May import classify, routing.normalize (to read a dataset as the gateway would) and the shared vocabulary."""
