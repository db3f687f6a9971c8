"""Benchmarks: throughput, latency, scrape time and memory, each as a ratio measured in the same run.

``python -m bench`` (full, < 15 min) or ``python -m bench --quick`` (CI smoke, < 2 min);
see bench/RESULTS.md for the latest numbers and what each measurement means.
"""
