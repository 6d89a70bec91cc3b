"""Generation: the inputs a verify run feeds an implementation (input regimes, Hypothesis strategies, cases, error inputs, settings profiles)."""
