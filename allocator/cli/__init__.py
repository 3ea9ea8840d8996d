"""The ``allocator`` command line."""
