"""Data contracts: dialler DB tables, the replica's tables, and message dataclasses."""
