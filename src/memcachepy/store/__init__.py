"""The cache store: slab memory, items with their LRU, and cache operations. No protocol."""
