"""Models for the LLM-level tests: small enough to simulate in seconds, shaped like real ones."""

from dataclasses import replace

from rduflow.models import get_config

# Llama 3.1 8B's layer shapes with 2 layers and a small vocabulary: its decode is bound by
# weight reads, as a full-size model's is, and it imports in a fraction of a second.
WIDE = replace(get_config("llama-3.1-8b"), name="wide-2l", num_layers=2, vocab_size=4096)
# A draft for speculative decoding: the same family, a quarter of the width.
DRAFT = replace(get_config("llama-3.1-8b"), name="draft-2l", num_layers=2, vocab_size=4096, hidden_size=1024,
                intermediate_size=3584, num_heads=8, num_kv_heads=2)
