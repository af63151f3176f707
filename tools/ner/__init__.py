"""Disease-mention recognition over PubTator records: reader/writer, recognisers and scoring."""

from tools.ner.metrics import PRF, evaluate
from tools.ner.pubtator import Mention, PubtatorDoc, read_pubtator, write_pubtator
from tools.ner.recognise import METHODS, best_method, recognise

__all__ = [
    "METHODS",
    "PRF",
    "Mention",
    "PubtatorDoc",
    "best_method",
    "evaluate",
    "read_pubtator",
    "recognise",
    "write_pubtator",
]
