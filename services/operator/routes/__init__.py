"""One module per resource; money-moving routes register their operation builder beside them."""
