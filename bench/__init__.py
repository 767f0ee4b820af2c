"""Benchmarks: ``make bench`` (``python -m bench``). Each scenario prints the project's
figure, a baseline measured in the same run on the same machine, and their ratio;
``bench/RESULTS.md`` keeps the last full run and the machine it ran on."""
