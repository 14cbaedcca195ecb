"""What a scan is on disk: read/ (decoders, pages), write/ (encoders, atomic writes), meta/ (metadata carried)."""
