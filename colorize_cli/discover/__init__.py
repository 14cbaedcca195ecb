"""Discovery: walk the input folder, decide which entries are scans and name each one's output."""
