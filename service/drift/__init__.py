"""Drift: detect, compare, rules, plan, monitor, remediate."""
