"""`colorize doctor`: checks of the install and every device, and their printout."""
