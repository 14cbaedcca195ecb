"""Executors: the local engine (threads, batches) and Ray (actors), behind one interface."""
