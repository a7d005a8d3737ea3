"""Daemon core: jobs, scheduler, residency, cache, media I/O, errors."""
