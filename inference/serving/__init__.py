"""Serving under load: request streams, schedulers, step models and latency percentiles."""
