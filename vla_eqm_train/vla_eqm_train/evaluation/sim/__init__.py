"""Closed-loop lockstep evaluation: worker processes and the policy client."""
