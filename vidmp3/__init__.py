"""VidMP3: motion-preserved video editing with pose and position priors."""

__version__ = "0.1.0"
