"""The Celery side of bench/compare: the tasks and the configuration it runs."""
