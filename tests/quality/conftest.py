"""The quality tests build their own small warehouses (see quality_warehouse.py)."""
