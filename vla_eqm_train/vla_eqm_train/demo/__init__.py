"""``vla-eqm demo``: the policy node closing the loop on the sim bridge, and its artifacts."""
