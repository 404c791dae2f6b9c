"""`make demo`: the whole pipeline on the embedded SmolLM2-135M-Instruct, offline, on a laptop CPU.

Scores the pretrained model, fine-tunes it with LoRA and with Astra (reference settings) on the math task,
scores each on the same held-out problems, and prints the table. Finished runs are reused (their records
exist), so a second `make demo` only prints. Extra Hydra overrides can follow: scripts/demo.py seed=1
"""

from __future__ import annotations

import json
import logging
import sys
import time

from hydra import compose, initialize_config_dir

from astra_repro import runs
from astra_repro.paths import CONFIG_DIR
from astra_repro.tables import write_tables
from astra_repro.train import run

DEMO_METHODS = ["base", "lora", "astra"]


def main(extra_overrides: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s %(name)s] %(message)s")
    logging.getLogger("transformers").setLevel(logging.WARNING)
    start = time.time()
    results = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for method in DEMO_METHODS:
            print(f"\n===== {method} =====", flush=True)
            # GSM8K only: the synthetic MATH stand-in would add ~1 min per row and measure nothing new here.
            cfg = compose("config", overrides=[f"method={method}", "evaluators=[gsm8k]", *extra_overrides])
            run_dir = run(cfg)
            results[method] = json.loads((run_dir / runs.METRICS_FILE).read_text())
    print("\n===== GSM8K-format held-out problems (same problems for every row) =====")
    for method, record in results.items():
        m = record["metrics"]["gsm8k"]
        source = record["eval_data"]["gsm8k"]["data_source"]
        n = record["eval_data"]["gsm8k"]["n_eval"]
        print(f"  {record['method_label']:<22} accuracy {m['accuracy']:6.2f}%  (math-verify {m['accuracy_math_verify']:6.2f}%, "
              f"{n} problems, {source} data, trained {record['timings'].get('train_s', 0):.0f} s)")
    print()
    write_tables()
    print(f"\ndemo wall time: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
