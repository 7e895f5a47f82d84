"""Where and how the library computes: device, torch threads, precision, malloc, processes."""
