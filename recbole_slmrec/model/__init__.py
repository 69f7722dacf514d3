"""Models of recbole-slmrec."""
