"""crisiswatch: a real-time social-listening crisis detector for customer-service teams."""

__version__ = "0.1.0"
