"""Episodes: the policy ↔ harness ↔ sandbox loop, producing token-exact trajectories."""
