"""`isolarcloud-exporter backfill`: the cloud's history of every plant, as OpenMetrics (and TSDB blocks) under the
live exporter's metric names. Wiring, like `app.py`: it uses the fetch side, the data module and the metric
definitions of `serve/metrics.py`, never the engine or the exposition. See docs/backfill.md."""
