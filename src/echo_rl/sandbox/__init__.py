"""Isolated shells for agents and verifiers: a bubblewrap backend and a container backend."""
