"""The prompts of bench/speculative.py, written out here so the corpus never changes with the app's code.

QUOTING prompts ask for an answer that repeats much of the prompt (code to edit and output whole, a
paragraph to correct, a source to summarise in its own words, a list to continue): prompt lookup
should draft most of it. ORDINARY prompts ask for new text, where drafting should cost nearly nothing.
Each entry is (name, kind, user message).
"""

from __future__ import annotations

QUOTING, ORDINARY = "quoting", "ordinary"

_INVENTORY_CODE = '''\
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Item:
    name: str
    quantity: int
    price: float


@dataclass
class Inventory:
    items: list[Item] = field(default_factory=list)

    def add(self, name: str, quantity: int, price: float) -> None:
        for item in self.items:
            if item.name == name:
                item.quantity += quantity
                item.price = price
                return
        self.items.append(Item(name, quantity, price))

    def remove(self, name: str, quantity: int) -> bool:
        for item in self.items:
            if item.name == name:
                if item.quantity < quantity:
                    return False
                item.quantity -= quantity
                return True
        return False

    def total_value(self) -> float:
        return sum(item.quantity * item.price for item in self.items)

    def save(self, path: Path) -> None:
        rows = [{"name": i.name, "quantity": i.quantity, "price": i.price} for i in self.items]
        path.write_text(json.dumps(rows, indent=2))

    @classmethod
    def load(cls, path: Path) -> "Inventory":
        rows = json.loads(path.read_text())
        return cls([Item(r["name"], r["quantity"], r["price"]) for r in rows])


if __name__ == "__main__":
    stock = Inventory()
    stock.add("apple", 10, 0.5)
    stock.add("pear", 4, 0.75)
    stock.remove("apple", 3)
    print(stock.total_value())
'''

_TEMPERATURE_CODE = '''\
def read_temperatures(lines):
    readings = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        city, value = line.split(",")
        readings.append((city.strip(), float(value)))
    return readings


def average(readings):
    if not readings:
        return 0.0
    total = 0.0
    for _, value in readings:
        total += value
    return total / len(readings)


def warmest(readings):
    best = None
    for city, value in readings:
        if best is None or value > best[1]:
            best = (city, value)
    return best


def report(readings):
    lines = []
    lines.append(f"cities: {len(readings)}")
    lines.append(f"average: {average(readings):.1f}")
    city, value = warmest(readings)
    lines.append(f"warmest: {city} ({value:.1f})")
    return "\\n".join(lines)


SAMPLE = [
    "# city, degrees",
    "Lisbon, 21.5",
    "Oslo, 9.0",
    "Cairo, 30.2",
    "Lima, 18.4",
]

if __name__ == "__main__":
    print(report(read_temperatures(SAMPLE)))
'''

_TYPOS_GARDEN = (
    "Fix the typos in this paragraph and output the corrected paragraph only:\n\n"
    "Every spring my grandmother plants tomatos, beans and sunflowers in the small gardin behind her "
    "house. She waters them each morning befor breakfast and talks to them as if they could here her. "
    "By the midle of summer the sunflowers are taller then the fence, and the neighbours children come "
    "over to count the bees that visit them. In the autum she saves the seeds in paper envelopes, writes "
    "the year on each one, and keeps them in a tin box untill the next spring."
)

_TYPOS_MEETING = (
    "Correct the spelling mistakes in the following text. Output the whole text with the mistakes "
    "fixed:\n\n"
    "The team meeting on Thursday will start at ten oclock in the main conference room. Please bring "
    "your notes from last weeks workshop and be ready to discus the new schedual. We will also review "
    "the budjet for the next quarter and decide wich projects recieve extra funding. If you can not "
    "attend, send your comments to the organiser befor Wednesday evening so they can be included in "
    "the agenda."
)

_SOURCE_LIGHTHOUSE = (
    "The lighthouse at Cape Mora was built in 1872 to warn ships away from the rocks at the mouth of "
    "the bay. Its light was first fuelled by whale oil, then by kerosene, and from 1931 by electricity. "
    "For ninety years a keeper and his family lived in the cottage at its foot, climbing the 143 steps "
    "every evening to light the lamp and every morning to clean the lens. The last keeper, Anna Ruiz, "
    "left in 1962, when the light was made automatic. Today the cottage is a small museum, and visitors "
    "can climb the tower on summer weekends to see the original lens, which still turns every night."
)

_SOURCE_BATTERIES = (
    "Lithium-ion batteries age in two ways. Calendar ageing happens even when a battery is not used: it "
    "is faster when the battery is stored warm and fully charged. Cycle ageing comes from charging and "
    "discharging: deep cycles from full to empty wear a battery faster than shallow ones. For this "
    "reason many phones and laptops now stop charging at about 80 percent when they are plugged in for "
    "long periods. Keeping a battery between 20 and 80 percent, and away from heat, is the simplest way "
    "to make it last longer."
)

CORPUS: list[tuple[str, str, str]] = [
    ("edit code: rename a class", QUOTING,
     "Here is a Python file:\n\n```python\n" + _INVENTORY_CODE + "```\n\nRename the class `Inventory` to "
     "`Stock` everywhere. Output the whole file."),
    ("edit code: rename a function", QUOTING,
     "Here is a Python file:\n\n```python\n" + _TEMPERATURE_CODE + "```\n\nRename the function `average` "
     "to `mean_temperature` everywhere it is used. Output the whole file."),
    ("fix typos: garden", QUOTING, _TYPOS_GARDEN),
    ("fix typos: meeting", QUOTING, _TYPOS_MEETING),
    ("summarise quoting: lighthouse", QUOTING,
     "Summarise this text, quoting its key sentences word for word:\n\n" + _SOURCE_LIGHTHOUSE),
    ("summarise quoting: batteries", QUOTING,
     "Summarise the following passage. Quote its sentences exactly where you can:\n\n" + _SOURCE_BATTERIES),
    ("continue a list: planets", QUOTING,
     "Continue this list in the same format until the last planet:\n\n"
     "1. Mercury - the closest planet to the Sun, a small rocky world.\n"
     "2. Venus - the second planet from the Sun, a rocky world with a thick atmosphere.\n"
     "3. Earth - the third planet from the Sun, a rocky world with oceans.\n"
     "4. Mars - the fourth planet from the Sun, a rocky world with red dust.\n"),
    ("continue a list: months", QUOTING,
     "Continue this list up to December, keeping exactly the same sentence for each month:\n\n"
     "- January is month number 1 of the year.\n"
     "- February is month number 2 of the year.\n"
     "- March is month number 3 of the year.\n"
     "- April is month number 4 of the year.\n"),
    ("explain: rainbows", ORDINARY, "Explain why rainbows appear after rain."),
    ("poem: the sea", ORDINARY, "Write a short poem about the sea at night."),
    ("advice: sleep", ORDINARY, "What can I do to sleep better? Give me some advice."),
    ("explain: compilers", ORDINARY, "What does a compiler do? Explain it to a beginner."),
    ("story: a lost key", ORDINARY, "Tell me a short story about a child who finds a lost key."),
]

# --quick: one of each kind. SmolLM2-135M explains the class renaming instead of doing it, but writes
# the function renaming's file out: a quoting answer within --quick's 48 tokens, and a long one to stop.
QUICK = ("edit code: rename a function", "explain: rainbows")
STOP_PROMPT = "edit code: rename a function"  # the stop latency is measured on it, drafting "on"
