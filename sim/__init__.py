"""spikeforge sim package."""
