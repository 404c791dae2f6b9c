"""python -m astra_repro.tasks : list every registered task with a one-line description."""

from astra_repro.tasks import describe_tasks

print("tasks (select with task=<name>; pick benchmarks with evaluators=[a,b]):")
print(describe_tasks())
