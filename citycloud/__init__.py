"""citycloud: KPI marts and settlement statements for city citizen-cloud portals."""

__version__ = "0.1.0"
