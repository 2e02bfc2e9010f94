"""Offline bag replay: decode metrics, per-iterate probes, reports and plots."""
