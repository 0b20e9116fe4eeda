"""medkiosk: the self-service kiosk platform of a public hospital."""

__version__ = "0.1.0"
