"""spikeforge model package."""
