"""Tests of citycloud.settlement."""
