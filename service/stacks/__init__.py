"""Stacks: related resources deployed, updated and destroyed together, in dependency order."""
