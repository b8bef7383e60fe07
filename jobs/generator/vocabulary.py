"""Words the generator composes titles and texts from. Categories carry nouns and aspects,
so review text has real category and sentiment signal for a text model."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    base_price: float
    brand_word: str
    nouns: tuple[str, ...]
    aspects: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 300.0, "Tech", ("headphones", "smartwatch", "bluetooth speaker", "tablet", "power bank"),
             ("battery life", "sound quality", "screen", "build quality")),
    Category("fashion", 60.0, "Wear", ("jacket", "sneakers", "dress", "jeans", "scarf"),
             ("fit", "fabric", "stitching", "color")),
    Category("beauty", 35.0, "Glow", ("face cream", "lipstick", "shampoo", "perfume", "serum"),
             ("scent", "texture", "packaging", "feel on the skin")),
    Category("home", 80.0, "Home", ("desk lamp", "cushion", "kettle", "storage box", "curtain"),
             ("design", "sturdiness", "size", "finish")),
    Category("sports", 90.0, "Fit", ("yoga mat", "running shoes", "dumbbell set", "bike helmet", "tennis racket"),
             ("grip", "weight", "comfort", "durability")),
    Category("books", 20.0, "Press", ("novel", "cookbook", "biography", "travel guide", "comic book"),
             ("story", "writing", "print quality", "cover")),
    Category("toys", 40.0, "Play", ("puzzle", "building blocks", "plush bear", "toy car", "board game"),
             ("pieces", "colors", "fun factor", "safety")),
    Category("grocery", 15.0, "Foods", ("coffee beans", "green tea", "olive oil", "dark chocolate", "pasta"),
             ("taste", "freshness", "aroma", "packaging")),
    Category("jewelry", 250.0, "Gems", ("necklace", "ring", "bracelet", "earrings", "wristwatch"),
             ("shine", "clasp", "gemstone", "craftsmanship")),
    Category("outdoors", 120.0, "Trail", ("tent", "backpack", "hiking boots", "sleeping bag", "camping stove"),
             ("waterproofing", "weight", "setup", "durability")),
    Category("pet", 30.0, "Pets", ("dog food", "cat toy", "pet bed", "leash", "aquarium filter"),
             ("quality", "size", "smell", "how my pet likes it")),
    Category("baby", 45.0, "Baby", ("diapers", "baby bottle", "stroller blanket", "baby monitor", "teether"),
             ("softness", "safety", "size", "ease of cleaning")),
)

CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}
BRAND_STEMS = ("Nova", "Apex", "Lumo", "Orion", "Vela", "Kite", "Zenith", "Miro")
ADJECTIVES = ("Classic", "Premium", "Compact", "Deluxe", "Eco", "Smart", "Ultra", "Essential", "Pro", "Lite")
CITIES = ("Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xi'an", "Chongqing",
          "Tianjin", "Suzhou", "Guangzhou")

# Review pieces by sentiment: 0 negative, 1 neutral, 2 positive.
OPENERS = (
    ("Really disappointed with this", "Would not buy this again:", "Waste of money, this", "Returned the"),
    ("It is an okay", "Average", "Does the job, a normal", "Nothing special about this"),
    ("Absolutely love this", "Very happy with the", "Best purchase this month, the", "Highly recommend this"),
)
VERDICTS = (
    ("is poor", "broke after a week", "is much worse than described", "feels cheap"),
    ("is fine", "is as expected", "could be better", "is acceptable for the price"),
    ("is excellent", "is amazing", "exceeded my expectations", "is perfect"),
)
STOCK_PHRASES = (
    ("Not worth the money.", "Bad quality.", "Arrived broken.", "Very slow delivery, bad product."),
    ("OK.", "As described.", "Average product.", "It's fine."),
    ("Great product!", "Fast delivery, thanks!", "Good value.", "Five stars."),
)
# Comments that announce a purchase: the user buys noticeably more in the week after writing one.
INTENT_PHRASES = ("Planning to order a {x} next week, which size should I pick?",
                  "I need a new {x} soon, is this one in stock?",
                  "Going to buy this {x} for my family, does it ship fast?",
                  "About to order the {x}, any discount coming?")
QUESTIONS = ("Does the {x} come in other colors?", "How is the {x} after a few months?",
             "Is this {x} worth it?", "Anyone compared this {x} with the older model?")
