"""Persistence shared by the API and the workers: SQLAlchemy 2.0 models, sessions, repositories."""
