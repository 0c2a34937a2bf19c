"""Blocks shared by two or more methods (attention, MLP, patch embedding). Nothing lands here speculatively."""
