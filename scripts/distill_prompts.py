"""Prompts whose answers the served model writes for scripts/distill_draft.py: open
instructions over a list of topics, copying and editing work on the license texts every Debian
machine has, and renaming / explaining Python functions from the standard library.

None of them is one of bench/spec_bench.py's prompts: that benchmark copies GPL-3 and
bench/serve_bench.py and asks its own twelve questions, so they are left out here, and the
acceptance it measures is on text the draft never saw."""
import inspect
import random
from pathlib import Path

SUBJECTS = [
    "volcanoes", "the moon's phases", "glaciers", "coral reefs", "the water cycle",
    "earthquakes", "black holes", "comets", "the Roman empire", "the printing press",
    "the steam engine", "electric cars", "solar panels", "wind turbines", "batteries",
    "airplanes", "submarines", "trains", "bridges", "skyscrapers", "the human heart",
    "the immune system", "sleep", "memory", "muscles", "bones", "teeth", "dreams", "dogs",
    "cats", "owls", "dolphins", "octopuses", "ants", "spiders", "butterflies", "sharks",
    "elephants", "penguins", "bread", "cheese", "coffee", "tea", "chocolate", "rice",
    "soup", "pizza", "gardening", "composting", "chess", "football", "swimming", "running",
    "cycling", "painting", "photography", "music theory", "the piano", "the guitar",
    "poetry", "novels", "libraries", "museums", "maps", "time zones", "calendars", "money",
    "banks", "taxes", "budgets", "job interviews", "friendship", "teamwork", "public speaking",
    "learning a language", "recycling", "plastic", "paper", "glass", "magnets", "electricity",
    "light", "sound", "gravity", "friction", "atoms", "chemical reactions", "acids", "DNA",
    "evolution", "fossils", "dinosaurs", "forests", "deserts", "rivers", "mountains", "clouds",
    "weather forecasts", "hurricanes", "snow", "email", "passwords", "databases",
    "spreadsheets", "sorting algorithms", "recursion", "binary numbers", "hash tables",
    "operating systems", "version control", "unit testing", "web browsers", "encryption",
    "robots", "3D printing", "satellites", "GPS", "telescopes", "microscopes", "vaccination",
    "first aid", "nutrition", "exercise", "meditation", "habits", "procrastination",
]
INSTRUCTIONS = [
    "What is {s}?", "Tell me three facts about {s}.", "Write a short paragraph about {s}.",
    "Describe {s} in simple words.", "What are the advantages and disadvantages of {s}?",
    "Write a short story that involves {s}.", "Give me a list of five questions about {s}.",
    "Summarize the history of {s} in a few sentences.", "How would you teach {s} to a friend?",
    "Write a haiku about {s}.", "What is a common misconception about {s}?",
    "Write an email to a colleague about {s}.",
]
LICENSES = ["Apache-2.0", "MPL-2.0", "LGPL-2.1", "GPL-2", "Artistic", "GFDL-1.3", "BSD"]
TEXT_TASKS = [
    "Repeat this text exactly.\n\n{t}", "Summarize this text in two sentences.\n\n{t}",
    "Rewrite this text in plain English.\n\n{t}",
    "Fix the spelling mistakes in this text and return it.\n\n{t}",
]
CODE_TASKS = [
    "Rename the function `{n}` to `new_{n}` and return the complete code.\n\n```python\n{c}\n```",
    "Explain what this Python function does.\n\n```python\n{c}\n```",
    "Add comments to this Python function.\n\n```python\n{c}\n```",
]


def license_paragraphs(limit):
    out = []
    root = Path("/usr/share/common-licenses")
    gpl3 = (root / "GPL-3").read_text(errors="replace") if (root / "GPL-3").exists() else ""
    for name in LICENSES:
        path = root / name
        if path.exists():
            paras = path.read_text(errors="replace").split("\n\n")
            out += [p.strip() for p in paras
                    if 150 < len(p.strip()) < 700 and p.strip() not in gpl3]
    return out[:limit]


def stdlib_functions(limit):
    import json
    import textwrap
    import shlex
    import string
    out = []
    for mod in (textwrap, shlex, string, json.decoder, json.encoder, inspect):
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            try:
                src = inspect.getsource(fn)
            except (OSError, TypeError):
                continue
            if 150 < len(src) < 900 and not name.startswith("_"):
                out.append((name, src))
    return out[:limit]


def build_prompts(count, seed=0):
    """Up to `count` user messages, shuffled (a third copying / editing / code work)."""
    rng = random.Random(seed)
    open_ = [i.format(s=s) for s in SUBJECTS for i in INSTRUCTIONS]
    texts = []
    for p in license_paragraphs(400):
        for task in rng.sample(TEXT_TASKS, 2):
            texts.append(task.format(t=p if "spelling" not in task else
                                     p.replace("the ", "teh ", 2).replace("which", "wich")))
    code = [t.format(n=n, c=c.rstrip()) for n, c in stdlib_functions(200)
            for t in rng.sample(CODE_TASKS, 2)]
    rng.shuffle(open_)
    work = texts + code
    rng.shuffle(work)
    n_work = min(len(work), count // 3)
    out = open_[:count - n_work] + work[:n_work]
    rng.shuffle(out)
    return out
