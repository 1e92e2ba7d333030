"""ferkit's version: a leaf module, so that the modules recording it (model files, adapter heads, results' metadata)
import it without importing the package's front door, which imports them."""
__version__ = "0.1.0"
