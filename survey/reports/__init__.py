"""The impact report: figures from SQL aggregates, honest statistics, traceable proof."""
