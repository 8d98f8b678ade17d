"""callaudit: where did a video call's traffic go, and did its key exchange leave the expected jurisdiction?"""

__version__ = "0.1.0"
