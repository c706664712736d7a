"""The runtime: scheduler and quotas place a Space on a node; a backend runs it; the reconciler keeps it so."""
