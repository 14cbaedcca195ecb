"""Reading scans: decode every page to sRGB gray (+ alpha), upright, with its metadata."""
