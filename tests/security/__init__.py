"""Probes written as an attacker would: each test failed on the code the review found it in."""
