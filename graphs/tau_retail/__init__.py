"""tau-bench retail: a customer-service agent that pre-runs the read calls of its next turn."""
