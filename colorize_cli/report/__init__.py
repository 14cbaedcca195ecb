"""The review sheet: measures, thumbnails and the HTML template."""
