"""Pure pieces of tensors: objectives, Lipschitz constraints, nets, the hand-written critic step,
schedules and update rules. Nothing here knows of configs, data sets or run folders."""
