"""Training: the loop, the one composition of a training step, building nets and optimisers,
state and rollback, telemetry, the stacked sweep, torchrun."""
