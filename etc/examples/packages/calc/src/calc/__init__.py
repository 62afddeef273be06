"""A tiny calculator, tested by the stasis example delivery."""


def add(a, b):
    return a + b


def mean(values):
    values = list(values)
    if not values:
        raise ValueError("mean of nothing")
    return sum(values) / len(values)
