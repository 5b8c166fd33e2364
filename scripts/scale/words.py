"""Chat texts for the scale data set: varied enough that a full-text search means something.

Templates per role and kind, filled from word lists (about a thousand distinct words in
all, drawn with a skew so that a few are everywhere, "pallet" in one message of six,
and most are rare, "forklift" in one of 300), among them the order words searches
try ("pallet", "invoice", "delivery", ...). No text carries contact details: chatd's
contact filter (`block`, the default) passes every one (tests/functional/test_scale_data.py).
"""

from __future__ import annotations

import random
import string

PRODUCTS = (
    "pallet pallets crate crates carton cartons drum drums bale sack sacks coil coils reel spool "
    "bracket brackets hinge hinges bolt bolts washer washers gasket gaskets valve valves pump pumps "
    "bearing bearings shaft pulley gearbox motor motors sensor sensors cable cables connector "
    "switch relay fuse panel panels frame frames beam beams tube tubes pipe pipes fitting fittings "
    "flange flanges nozzle hose hoses filter filters cartridge membrane tile tiles plank planks "
    "sheet sheets plate plates rod rods wire mesh fabric yarn thread button zipper buckle strap "
    "lamp lamps bulb fixture charger battery batteries adapter monitor keyboard printer toner "
    "chair chairs desk desks shelf shelving cabinet locker trolley ladder scaffold forklift jack "
    "glove gloves helmet helmets boot boots vest jacket apron mask goggles mug mugs bottle bottles "
    "jar jars lid lids cup cups tray trays bowl plate napkin towel soap detergent sealant adhesive "
    "paint primer varnish resin solvent lubricant grease coolant granulate powder pellet pellets"
).split()
MATERIALS = (
    "steel stainless aluminium copper brass bronze zinc titanium oak pine birch beech walnut bamboo "
    "cotton linen wool silk polyester nylon leather rubber silicone ceramic porcelain glass acrylic "
    "polycarbonate concrete granite marble slate cardboard kraft plywood chipboard foam cork felt"
).split()
ADJECTIVES = (
    "blue red green black white grey yellow orange matte glossy brushed polished galvanised coated "
    "heavy light large small medium narrow wide thick thin short long round square oval flat curved "
    "reinforced waterproof fireproof recycled organic premium standard economy custom spare "
    "damaged scratched dented cracked broken bent wet missing wrong faulty loose sealed unsealed "
    "urgent fragile oversized refrigerated frozen hazardous certified tested approved rejected"
).split()
ORDER_WORDS = (
    "delivery shipment invoice tracking customs freight carrier courier warehouse dispatch label "
    "packing quote discount payment refund credit backorder container truck lorry dock loading "
    "unloading consignment waybill manifest receipt certificate inspection sample batch lot "
    "schedule deadline surcharge deposit balance transfer remittance tariff duty incoterms"
).split()
PLACES = (
    "Hamburg Rotterdam Antwerp Gdansk Malmo Gothenburg Aarhus Oslo Bergen Tallinn Riga Vilnius "
    "Warsaw Poznan Wroclaw Leipzig Dresden Munich Stuttgart Cologne Bremen Hanover Lyon Marseille "
    "Lille Bordeaux Porto Lisbon Valencia Bilbao Genoa Milan Turin Naples Trieste Vienna Graz Linz "
    "Brno Ostrava Bratislava Budapest Zagreb Ljubljana Basel Zurich Geneva Ghent Bruges Liege"
).split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday tomorrow today tonight".split()
MONTHS = "January February March April May June July August September October November December".split()
VERBS = (
    "check confirm send resend update cancel reschedule repack relabel inspect replace return "
    "collect deliver ship load unload weigh measure count photograph approve reject forward split"
).split()
FILLER = (
    "please thanks sorry again already still soon later asap kindly regards hello morning afternoon "
    "maybe probably definitely unfortunately luckily meanwhile otherwise however also only exactly"
).split()

FIRST = (
    "Anna Ben Clara David Eva Felix Greta Hugo Ida Jonas Karin Lars Lena Max Mia Nils Olga Paul "
    "Rosa Sven Tara Ugo Vera Walter Xenia Yusuf Zoe Ahmed Bianca Carlos Dora Emil Fatima Gustav "
    "Helga Ivan Julia Kofi Lucia Marek Nora Oskar Petra Quentin Rania Stefan Tomas Ulla Viktor"
).split()
LAST = (
    "Berg Lindqvist Novak Schmidt Rossi Dubois Jansen Kowalski Nielsen Horvat Silva Fischer Weber "
    "Meyer Wagner Becker Hoffmann Keller Moreau Laurent Costa Ferreira Olsen Hansen Larsen Eriksson "
    "Virtanen Korhonen Nagy Kovacs Popescu Ionescu Petrov Ivanova Marino Greco Bianchi Romano Vogel"
).split()
COMPANY = (
    "Nordic Baltic Alpine Atlantic Central Eastern Western Northern Southern Coastal Union Royal "
    "Prime Apex Vertex Summit Delta Sigma Omega Pioneer Heritage Crown Falcon Eagle Harbor River"
).split()
TRADE = (
    "Tools Metals Plastics Textiles Timber Packaging Logistics Supply Trading Components Hardware "
    "Chemicals Ceramics Fasteners Hydraulics Electrics Furniture Paper Glassworks Foundry"
).split()
SUFFIX = "GmbH AB AS Oy BV SRL Ltd Sp.z.o.o. s.r.o. SA".split()

BUYER = (
    "When will the {p} leave {place}?",
    "Can you confirm the {o} date for the {n} {p}?",
    "The {o} shows the wrong quantity of {p}, we ordered {n}.",
    "{n} of the {p} arrived {a}, photos follow.",
    "Is the {m} version of the {p} still available?",
    "Please {v} the {o} before {day}, our {o2} team needs it.",
    "Could you add {n} {a} {p} to this order?",
    "Our {place} {o} dock is closed on {day}, can the truck come {day2}?",
    "The {p} on the last {o} were {a} again.",
    "Do you have a {o} for the {a} {m} {p}?",
    "We still have not received the {o}, {f} {v} it.",
    "How many {p} fit on one pallet?",
    "The {o} number on the label does not match the {o2}.",
    "Thanks, the {p} look fine. {F}",
    "Any news on the {o}? {F}",
)
SUPPLIER = (
    "The {p} leave our {place} warehouse on {day}.",
    "{O} corrected and sent again, {f}.",
    "We can offer a {n} percent discount on the next pallet of {p}.",
    "Tracking for the {o} is updated, the carrier collects {day}.",
    "The {m} {p} are on backorder until {month}.",
    "We packed {n} {p} per crate, {n2} crates in total.",
    "Please send photos of the {a} {p} so we can file the claim.",
    "The {o} for {n} {p} is attached to the {o2}.",
    "Our driver reaches {place} on {day} morning.",
    "Sorry for the {a} {p}, we will {v} them at our cost.",
    "The {a} {m} {p} passed inspection, certificate follows.",
    "{O} and {o2} go out together {day}.",
    "We split the {o} in two: {n} {p} now, the rest in {month}.",
    "Confirmed, {n} {a} {p} added. {F}",
)
REP = (
    "I will {v} the {o} with the warehouse in {place}.",
    "Following up on the {a} {p}, {f}.",
    "The customer asks for the {m} {p} instead.",
    "Reminder: the {o} deadline is {day}.",
)
NOTE = (
    "Internal: customer is price sensitive, keep the {a} {o} offer.",
    "Internal: {place} stock of {p} is low, check before confirming.",
    "Credit limit reached, hold the {o} until the {o2} is paid.",
    "Second {a} {o} this {month}, escalate if it happens again.",
    "Margin on the {m} {p} is thin, no further discount.",
    "Carrier in {place} was late twice, use the other one.",
)
STAFF = (
    "Platform support here: we are looking into the {a} {p}.",
    "Please both upload the {o} and the photos of the {p}.",
    "We asked the carrier in {place} for the {o2} records.",
    "Support: the {o} was refunded, closing this on {day}.",
)
DISPUTE = (
    "{p} arrived {a}",
    "{o} does not match the {o2}",
    "{n} {p} missing from the {o}",
    "wrong {m} {p} delivered",
)


def _fields(template: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(template) if name))


class Texts:
    """Texts drawn from one seeded generator: the same seed gives the same texts."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        r = rng.random
        pick = self._pick
        skew = self._skewed
        self._make = {
            "p": lambda: skew(PRODUCTS),
            "m": lambda: skew(MATERIALS),
            "a": lambda: skew(ADJECTIVES),
            "o": lambda: skew(ORDER_WORDS),
            "O": lambda: skew(ORDER_WORDS).capitalize(),
            "o2": lambda: pick(ORDER_WORDS),
            "v": lambda: pick(VERBS),
            "n": lambda: 2 + int(r() * 479),
            "n2": lambda: 2 + int(r() * 39),
            "place": lambda: skew(PLACES),
            "day": lambda: pick(DAYS),
            "day2": lambda: pick(DAYS),
            "month": lambda: pick(MONTHS),
            "f": lambda: pick(FILLER),
            "F": lambda: pick(FILLER).capitalize() + ".",
        }
        self._fields = {t: _fields(t) for t in (*BUYER, *SUPPLIER, *REP, *NOTE, *STAFF, *DISPUTE)}

    def _pick(self, words: list[str]) -> str:
        return words[int(self.rng.random() * len(words))]

    def _skewed(self, words: list[str]) -> str:
        """A word, the first ones of the list far more often (searches find common and rare ones)."""
        return words[int(len(words) * self.rng.random() ** 2.2)]

    def _fill(self, templates: tuple[str, ...]) -> str:
        template = templates[int(self.rng.random() * len(templates))]
        make = self._make
        text = template.format(**{name: make[name]() for name in self._fields[template]})
        if self.rng.random() < 0.3:  # a second sentence: more words per message, more varied pairs
            pick, skew = self._pick, self._skewed
            text += f" {pick(FILLER).capitalize()}, the {skew(ORDER_WORDS)} {pick(VERBS)} {skew(ADJECTIVES)}"
            text += f" {skew(PRODUCTS)}."
        return text

    def message(self, role: str, note: bool) -> str:
        if note:
            return self._fill(NOTE)
        return self._fill({"buyer": BUYER, "supplier": SUPPLIER, "sales_rep": REP + SUPPLIER, "staff": STAFF}[role])

    def dispute_reason(self) -> str:
        return self._fill(DISPUTE)

    def person(self) -> str:
        return f"{self._pick(FIRST)} {self._pick(LAST)}"

    def company(self) -> str:
        return f"{self._pick(COMPANY)} {self._pick(TRADE)} {self._pick(SUFFIX)}"
