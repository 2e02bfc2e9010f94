"""How checkpoints are measured: in closed loop (sim), on recorded bags (offline), live."""
