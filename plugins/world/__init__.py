"""The built-in world: what runs need when nothing can be downloaded (tokenizer, corpus)."""
