"""spikeforge hw package."""
