"""Models (torch): structured linear layers, the GPT, self-guided training."""
