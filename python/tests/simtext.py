"""The simulated node's text (bench/sim/text.c), computed here from its
definition so that tests check answers against something outside the
library: FNV-1a of the model, a 0xff byte and the last user message; a
splitmix step per token into a fixed vocabulary."""

VOCAB = ["The ", "sky ", "is ", "blue ", "because ", "air ", "scatters ", "short ", "waves ", "of ", "light ",
         "more ", "than ", "long ", "ones", ". ", "Rayleigh ", "café ", "naïve ", "\"quoted\" ", "line\n", "tab\t",
         "🌍 ", "and ", "so ", "on ", "a ", "model ", "answers ", "token ", "by ", "token. "]


def sim_answer(model, prompt, n):
    """The first n tokens the node answers to prompt (the last user message) for model."""
    m64 = (1 << 64) - 1
    h = 1469598103934665603
    for b in model.encode() + b"\xff" + prompt.encode():
        h = ((h ^ b) * 1099511628211) & m64
    out = []
    for i in range(n):
        x = (h + i * 0x9E3779B97F4A7C15) & m64
        x ^= x >> 31
        x = (x * 0xBF58476D1CE4E5B9) & m64
        x ^= x >> 29
        out.append(VOCAB[x % len(VOCAB)])
    return "".join(out)
