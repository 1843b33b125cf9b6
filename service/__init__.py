"""The FastAPI process: HTTP API over the job database; sends Celery tasks by name only."""
