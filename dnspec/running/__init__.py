"""Running: calling an implementation without letting it take the suite down, one trial per case, worker processes, the runner, divergences and the verdict."""
