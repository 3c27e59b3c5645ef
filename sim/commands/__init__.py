"""Subcommands of the spikeforge CLI (one module each)."""
