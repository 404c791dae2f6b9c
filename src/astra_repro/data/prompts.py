"""Prompt templates, as data. Training, calibration and evaluation prompts all come from here, so they can
only differ on purpose (protocol §1.1, §2.2, §3.1)."""

ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)

# The reference calibration text has no Alpaca header (protocol D8).
REFERENCE_CALIBRATION_TEXT = "{instruction}\n### Response:{output}"

# GSM8K / MATH evaluation prompt of the reference code (protocol §3.1).
MATH_EVAL_SUFFIX = " Let's think step by step."

# The reference stop strings for math generation (protocol §3.1).
MATH_STOP_STRINGS = ["Instruction:", "Instruction", "Response:", "Response"]


def training_source(instruction: str) -> str:
    return ALPACA_PROMPT.format(instruction=instruction)


def training_target(output: str, eos_token: str) -> str:
    """The reference target: the response, a newline and the EOS token *as text* (protocol §2.2)."""
    return f"{output}\n{eos_token}"


def calibration_text(instruction: str, output: str, style: str, eos_token: str = "") -> str:
    """`reference`: instruction + "\\n### Response:" + output (released code). `training`: the training text."""
    if style == "reference":
        return REFERENCE_CALIBRATION_TEXT.format(instruction=instruction, output=output)
    if style == "training":
        return training_source(instruction) + training_target(output, eos_token)
    from astra_repro.errors import ConfigError

    raise ConfigError(f"unknown calibration prompt '{style}'; valid: reference, training")


def math_eval_prompt(question: str) -> str:
    return ALPACA_PROMPT.format(instruction=question) + MATH_EVAL_SUFFIX
