"""python -m astra_repro.methods : list every registered method with a one-line description."""

from astra_repro.methods import describe_methods

print("methods (select with method=<name>):")
print(describe_methods())
