"""ssl-robustness: does SSL lose less than supervised learning on long-tailed data?"""

__version__ = "0.1.0"
