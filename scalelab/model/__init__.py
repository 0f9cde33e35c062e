"""The model: structured linears (linear.py), the GPT (gpt.py), self-guided training (guided.py). Uses torch."""
