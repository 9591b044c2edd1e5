"""English templates for the demo data set: name syllables, value pools and document domains.

Pure data, read by `ragtune.demo.dataset`. Each domain describes one kind of fictional entity:

    name        pattern for the entity's name; {brand}/{place} are invented words, {person} an
                invented full name, any other {key} a random pick from POOLS[key]
    intro       opening sentences that introduce the entity without stating any attribute
    filler      distractor sentences that state no attribute (so refusals stay correct)
    attributes  attribute -> value spec, sentences that state it ("say") and questions ("ask")

Value specs: "year", "person", "place", "date", "title", "pool KEY", "named SUFFIX|SUFFIX"
(an invented word plus one suffix), "num LO HI [UNIT]" and "price LO HI". A document states
some attributes and leaves the rest unstated; questions about the unstated ones must be refused,
so no sentence may leak another attribute (a founding sentence never names the founder).
"""

from __future__ import annotations

from typing import Any

# Invented words are START + MIDDLE + END; the mixes are odd enough to read as fictional.
WORD_START = [
    "Ar", "Bel", "Cor", "Dar", "El", "Fen", "Gal", "Hal", "Ister", "Jor", "Kel", "Lor", "Mar",
    "Nor", "Orm", "Pel", "Quen", "Ros", "Sel", "Tor", "Ul", "Val", "Wen", "Yar", "Zel", "Bram",
    "Cal", "Dun", "Ev", "Fal", "Gor", "Hav", "Lin", "Mor", "Ost", "Tam", "Ves", "Wyn", "Kas", "Riv",
]  # fmt: skip
WORD_MIDDLE = ["", "", "", "an", "el", "or", "is", "ev", "ar", "en"]
PLACE_END = [
    "ton", "mere", "wick", "dale", "holm", "by", "stead", "vale", "ford", "moor", "gard", "haven",
    "rin", "dor", "ven", "thal", "mont", "brook", "ley", "wyn", "stow", "crest",
]  # fmt: skip
BRAND_END = ["ex", "ora", "ion", "ix", "ara", "elle", "on", "yn", "is", "ium", "eth", "os", "ada"]
FIRST_START = [
    "Ma", "Li", "Ta", "Se", "Ro", "Ka", "No", "Ve", "Da", "Mi", "A", "E", "O", "I", "Bre", "Ca",
    "Fe", "Jo", "Lu", "Ne", "Sa", "Te",
]  # fmt: skip
FIRST_END = [
    "ra", "na", "ren", "lia", "mon", "ris", "vin", "del", "tha", "ric", "sa", "lo", "wen", "mir",
    "nie", "dor",
]  # fmt: skip
SURNAME_END = [
    "ward", "ley", "ton", "ridge", "mont", "sen", "ova", "ello", "ier", "ston", "quist", "ani",
    "oux", "wright", "hart", "berg",
]  # fmt: skip

MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
TITLE_ADJ = [
    "Glass", "Silent", "Northern", "Amber", "Winter", "Hollow", "Distant", "Crimson", "Quiet",
    "Wandering", "Paper", "Iron", "Evening", "Salt",
]  # fmt: skip
TITLE_NOUN = [
    "Orchard", "Harbour", "Procession", "Meadows", "Tides", "Bells", "Gardens", "Letters", "Birds",
    "Rivers", "Clocks", "Songs", "Shores", "Mirrors",
]  # fmt: skip

POOLS: dict[str, list[str]] = {
    "colour": [
        "dark green", "bright orange", "navy blue", "pale yellow", "deep red", "silver grey",
        "sky blue", "matte black", "cream white", "olive green", "plum purple", "copper brown",
    ],
    "product": [
        "bicycle bells", "garden hoses", "ceramic tiles", "folding ladders", "wool blankets",
        "canned sardines", "desk lamps", "hiking boots", "copper kettles", "office chairs",
        "sewing machines", "fishing reels", "glass bottles", "rubber gloves", "wooden toys",
        "kitchen scales",
    ],
    "research_field": [
        "sea ice", "glacier melt", "seabird colonies", "the upper atmosphere", "ocean currents",
        "permafrost", "cosmic rays", "volcanic gases", "lichen growth", "whale migration",
        "ice cores", "auroras",
    ],
    "food": [
        "smoked trout", "honey cakes", "grilled corn", "plum dumplings", "spiced lentil soup",
        "walnut bread", "fried river fish", "apple fritters", "roast chestnuts",
        "cheese pastries", "mushroom pies", "sweet rice balls",
    ],
    # No piano: it is the subject of a counterfactual fact and must not leak across splits.
    "instrument": [
        "cello", "oboe", "harp", "viola", "clarinet", "organ", "bassoon", "flute", "double bass",
        "harpsichord", "French horn", "accordion",
    ],
    "animal": [
        "heron", "lynx", "badger", "otter", "falcon", "stag", "fox", "owl", "wolf", "bear",
        "hare", "raven",
    ],
    "rock": ["granite", "basalt", "limestone", "sandstone", "slate", "gneiss", "quartzite"],
    "company_suffix": ["Industries", "Group", "Works", "Holdings", "Labs", "Manufacturing"],
    "ship_prefix": ["RV", "MV", "SS"],
    "festival_kind": [
        "Lantern Festival", "Kite Festival", "Harvest Fair", "Folk Music Week", "Winter Market",
        "Flower Parade",
    ],
}  # fmt: skip


def _attr(value: str, say: list[str], ask: list[str]) -> dict[str, Any]:
    return {"value": value, "say": say, "ask": ask}


DOMAINS: list[dict[str, Any]] = [
    {
        "domain": "company",
        "name": "{brand} {company_suffix}",
        "intro": [
            "{name} is a privately held company with a reputation for steady, cautious growth and a loyal group of long-standing customers.",
            "{name} is a mid-sized manufacturer whose name is familiar to shoppers in its region, although it rarely advertises on television.",
            "{name} began as a small workshop with a single lathe and grew, slowly and carefully, into one of the larger firms of its kind.",
        ],
        "filler": [
            "Its annual report is printed on recycled paper and mailed to every shareholder, along with a handwritten note of thanks.",
            "Analysts describe the firm as careful, preferring slow expansion and modest borrowing to the risky takeovers favoured by its rivals.",
            "Every winter the company sponsors a youth chess tournament, which has become a popular fixture in the local calendar.",
            "In a recent survey, staff rated the canteen, with its cheap soup and fresh bread, as the best perk of the job.",
        ],
        "attributes": {
            "founded": _attr("year", [
                "{name} was established in {value} and has stayed independent ever since.",
                "The company traces its origins to {value}, when its first workshop opened.",
                "Records show that {name} was founded in {value}, after years of planning.",
            ], ["When was {name} founded?", "In what year was {name} established?",
                "What year did {name} start?"]),
            "founder": _attr("person", [
                "The firm was founded by {value}, a former bookkeeper with borrowed money.",
                "{name} owes its existence to its founder, {value}.",
                "Its founder, {value}, started the business in a rented garage.",
            ], ["Who founded {name}?", "Who is the founder of {name}?", "Who started {name}?"]),
            "headquarters": _attr("place", [
                "{name} has its headquarters in the city of {value}.",
                "The company is based in {value}, where its offices occupy an old mill.",
                "Its head office sits in {value}, close to the central station.",
            ], ["Where is {name} headquartered?", "In which city is {name} based?",
                "Where is the head office of {name}?"]),
            "employees": _attr("num 40 9000", [
                "Today {name} employs {value} people across its offices and plants.",
                "The company has a workforce of {value} employees.",
                "According to its latest report, {name} has {value} staff.",
            ], ["How many people does {name} employ?", "How many employees does {name} have?",
                "How big is the workforce of {name}?"]),
            "product": _attr("pool product", [
                "Most of the revenue of {name} comes from its {value}.",
                "{name} is best known for its {value}, sold in hardware shops everywhere.",
                "The firm's best-selling line is its {value}.",
            ], ["What product is {name} best known for?", "What is {name}'s best-selling product?",
                "What does {name} mainly sell?"]),
            "ceo": _attr("person", [
                "The company is currently led by chief executive {value}.",
                "{value} serves as the chief executive of {name}.",
                "Since the last board vote, {name} has been run by {value}.",
            ], ["Who is the CEO of {name}?", "Who runs {name} today?",
                "Who is the chief executive of {name}?"]),
        },
    },
    {
        "domain": "town",
        "name": "{place}",
        "intro": [
            "{name} is a small town set among rolling hills, apple orchards and old stone walls, far from the nearest motorway.",
            "{name} is a quiet market town that attracts walkers and cyclists in the summer months and sleeps through most of the winter.",
            "{name} is an old town with narrow streets, crooked timber houses and a busy weekly market in its central square.",
        ],
        "filler": [
            "The clock on the town hall is said never to have stopped, not even during the worst storms anyone can remember.",
            "Local bakers are proud of their dark rye bread, which they still bake in wood-fired ovens before dawn.",
            "A narrow-gauge railway once linked the town to the coast, and parts of its old track can still be walked today.",
            "Visitors often praise the calm of its cobbled streets in the evening, when the shops close and the cafes fill up.",
        ],
        "attributes": {
            "population": _attr("num 800 90000", [
                "{name} has a population of about {value}.",
                "Roughly {value} people live in {name} today.",
                "The last census counted {value} residents in {name}.",
            ], ["What is the population of {name}?", "How many people live in {name}?",
                "How many residents does {name} have?"]),
            "mayor": _attr("person", [
                "The current mayor of {name} is {value}.",
                "{value} was elected mayor of {name} at the last election.",
                "The town council is chaired by Mayor {value}.",
            ], ["Who is the mayor of {name}?", "Who is {name}'s mayor?",
                "Who chairs the town council of {name}?"]),
            "river": _attr("named River", [
                "{name} lies on the banks of the {value}.",
                "The {value} flows through the middle of {name}.",
                "Several old bridges cross the {value} in {name}.",
            ], ["Which river flows through {name}?", "On what river does {name} lie?",
                "What river runs through {name}?"]),
            "founded": _attr("year", [
                "{name} received its town charter in {value}.",
                "Historians date the founding of {name} to {value}.",
                "The first settlers built {name} in {value}.",
            ], ["When was {name} founded?", "In what year was {name} founded?",
                "When did {name} get its charter?"]),
            "elevation": _attr("num 40 2400 metres", [
                "{name} sits at an elevation of {value} above sea level.",
                "The town lies {value} above sea level.",
                "At {value} above sea level, {name} has cool summers.",
            ], ["What is the elevation of {name}?", "How high above sea level is {name}?",
                "At what altitude does {name} lie?"]),
            "twin_town": _attr("place", [
                "{name} is twinned with the town of {value}.",
                "For decades {name} has had a twinning partnership with {value}.",
                "Every spring, a delegation from its twin town, {value}, visits {name}.",
            ], ["Which town is {name} twinned with?", "What is the twin town of {name}?",
                "Which town is twinned with {name}?"]),
        },
    },
    {
        "domain": "research station",
        "name": "{brand} Station",
        "intro": [
            "{name} is a remote research station staffed by scientists from several countries, who share its cramped labs and living quarters.",
            "{name} is a scientific outpost that studies the climate of its harsh surroundings through long, dark winters and brief summers.",
            "{name} is a research base that can only be reached by ship or light aircraft, and only when the weather allows it.",
        ],
        "filler": [
            "Supplies are flown in whenever the weather allows a safe landing, and fresh fruit is treated as a great luxury.",
            "Researchers there keep a long, unbroken record of daily temperature readings that climate scientists around the world rely on.",
            "The kitchen is famous among visiting scientists for its fresh bread, baked every morning by whoever is on duty.",
            "Its generators run on a mix of diesel and wind power, and saving fuel is a constant worry for the team.",
        ],
        "attributes": {
            "established": _attr("year", [
                "{name} was established in {value}.",
                "The station opened in {value} after two long seasons of construction.",
                "Scientific work at {name} began in {value}.",
            ], ["When was {name} established?", "In what year did {name} open?",
                "When did work at {name} begin?"]),
            "location": _attr("named Plateau|Island|Glacier|Ice Shelf", [
                "{name} is located on the {value}.",
                "The station stands on the {value}, far from any town.",
                "{name} was built on the {value}.",
            ], ["Where is {name} located?", "Where does {name} stand?",
                "On what site was {name} built?"]),
            "director": _attr("person", [
                "{name} is directed by the glaciologist {value}.",
                "The station's director is {value}.",
                "{value} has led {name} for the past six years.",
            ], ["Who directs {name}?", "Who is the director of {name}?", "Who leads {name}?"]),
            "staff": _attr("num 8 160", [
                "{name} houses {value} staff during the summer season.",
                "A team of {value} people works at the station.",
                "In summer, {value} researchers and technicians live at {name}.",
            ], ["How many people work at {name}?", "How large is the staff of {name}?",
                "How many staff does {name} have?"]),
            "focus": _attr("pool research_field", [
                "Research at {name} focuses on {value}.",
                "The main research topic at {name} is {value}.",
                "Scientists at {name} mainly study {value}.",
            ], ["What does research at {name} focus on?", "What do scientists at {name} study?",
                "What is the main research topic at {name}?"]),
            "elevation": _attr("num 20 3600 metres", [
                "{name} lies at an altitude of {value}.",
                "The station sits {value} above sea level.",
                "At {value} above sea level, {name} is often wrapped in cloud.",
            ], ["At what altitude is {name}?", "How high above sea level is {name}?",
                "What is the elevation of {name}?"]),
        },
    },
    {
        "domain": "ship",
        "name": "{ship_prefix} {brand}",
        "intro": [
            "{name} is a steel-hulled vessel that has carried cargo and passengers along a rugged coast through decades of rough weather.",
            "{name} is a research vessel used for surveys of the northern seas, with laboratories, winches and a small helicopter deck.",
            "{name} is a passenger ferry remembered fondly by generations of island travellers for her slow crossings and warm cabins.",
        ],
        "filler": [
            "Her galley was completely refitted during a long winter overhaul, and the cooks say it is now the best afloat.",
            "Old sailors still tell stories about her first stormy voyage, when half of the passengers were seasick for days.",
            "A detailed model of the ship, complete with tiny lifeboats, is displayed in a maritime museum on the waterfront.",
            "She once rescued the crew of a fishing boat during a gale, an event still marked by a plaque on her bridge.",
        ],
        "attributes": {
            "launched": _attr("year", [
                "{name} was launched in {value}.",
                "The ship first took to the water in {value}.",
                "{name} slid down the slipway in {value}, watched by a large crowd.",
            ], ["When was {name} launched?", "In what year was {name} launched?",
                "What year did {name} first take to the water?"]),
            "captain": _attr("person", [
                "Her current captain is {value}.",
                "{name} is commanded by Captain {value}.",
                "Captain {value} has been in command of {name} since her last refit.",
            ], ["Who is the captain of {name}?", "Who commands {name}?",
                "Who is in command of {name}?"]),
            "home_port": _attr("place", [
                "Her home port is {value}.",
                "{name} is registered in the port of {value}.",
                "{name} returns to {value}, her home port, every autumn.",
            ], ["What is the home port of {name}?", "Where is {name} registered?",
                "Which port is home to {name}?"]),
            "length": _attr("num 30 240 metres", [
                "{name} is {value} long.",
                "The ship measures {value} from bow to stern.",
                "With a length of {value}, she is larger than most ships in her class.",
            ], ["How long is {name}?", "What is the length of {name}?",
                "How long is {name} from bow to stern?"]),
            "crew": _attr("num 8 400", [
                "{name} sails with a crew of {value}.",
                "A crew of {value} keeps the ship running.",
                "She carries {value} crew members on a typical voyage.",
            ], ["How many crew does {name} have?", "What is the crew size of {name}?",
                "How many crew members sail on {name}?"]),
            "hull_colour": _attr("pool colour", [
                "Her hull is painted {value}.",
                "{name} is easy to spot thanks to her {value} hull.",
                "The ship's hull was repainted {value} during her last refit.",
            ], ["What colour is the hull of {name}?", "What colour is {name}'s hull?",
                "What colour is {name} painted?"]),
        },
    },
    {
        "domain": "festival",
        "name": "{brand} {festival_kind}",
        "intro": [
            "The {name} is a yearly celebration that draws families from across the region for several days of music, games and food.",
            "The {name} is a lively annual event with brass bands, food stalls and parades that wind through the old streets.",
            "The {name} is a community festival run almost entirely by volunteers, with very little money and a great deal of goodwill.",
        ],
        "filler": [
            "Volunteers spend weeks preparing decorations before the first day, painting banners and stringing lights between the houses.",
            "Local schools often close early on the opening day so that children can join the parade in costume.",
            "According to the organisers, rain has rarely spoiled the event, though one year a sudden storm flattened the main tent.",
            "Street musicians play late into the night on the main square, and nobody seems to mind the noise.",
        ],
        "attributes": {
            "first_held": _attr("year", [
                "The {name} was first held in {value}.",
                "The first {name} took place in {value}.",
                "Organisers have staged the {name} every year since {value}.",
            ], ["When was the {name} first held?", "In what year did the {name} begin?",
                "Since when has the {name} been held?"]),
            "town": _attr("place", [
                "The {name} takes place in the town of {value}.",
                "Each year the {name} fills the streets of {value}.",
                "The {name} is hosted by the town of {value}.",
            ], ["Where is the {name} held?", "Which town hosts the {name}?",
                "In which town does the {name} take place?"]),
            "opening_date": _attr("date", [
                "The {name} opens on {value} each year.",
                "Every year the {name} begins on {value}.",
                "The opening day of the {name} is {value}.",
            ], ["When does the {name} open?", "On what date does the {name} begin?",
                "What is the opening day of the {name}?"]),
            "founder": _attr("person", [
                "The {name} was started by {value}.",
                "{value} founded the {name} to bring neighbours together.",
                "The idea for the {name} came from {value}.",
            ], ["Who started the {name}?", "Who founded the {name}?",
                "Whose idea was the {name}?"]),
            "visitors": _attr("num 500 200000", [
                "About {value} visitors attend the {name} each year.",
                "The {name} attracts some {value} people annually.",
                "Last year, {value} visitors came to the {name}.",
            ], ["How many visitors does the {name} attract?", "How many people attend the {name}?",
                "How many visitors come to the {name}?"]),
            "dish": _attr("pool food", [
                "The signature dish of the {name} is {value}.",
                "No visit to the {name} is complete without {value}.",
                "Stalls at the {name} are famous for {value}.",
            ], ["What is the signature dish of the {name}?", "What food is the {name} famous for?",
                "Which dish is the {name} known for?"]),
        },
    },
    {
        "domain": "composer",
        "name": "{person}",
        "intro": [
            "{name} is a composer whose chamber music, written for small groups of strings and winds, is still performed in intimate concert halls.",
            "{name} is a composer whose quiet, melodic works have slowly found a loyal audience among listeners who prefer calm to drama.",
            "{name} was a composer and a patient music teacher who was greatly admired by many of the younger musicians of the day.",
        ],
        "filler": [
            "Critics have called the composer's style restrained and precise, with melodies that seem simple until one tries to sing them.",
            "Several handwritten scores survive in private collections, some of them covered in corrections and small drawings.",
            "Recordings of the composer's music are rare, but collectors prize them and trade them at surprisingly high prices.",
            "A small museum displays letters, concert posters and photographs from the composer's long and busy life.",
        ],
        "attributes": {
            "born": _attr("year", [
                "{name} was born in {value}.",
                "Born in {value}, {name} showed musical talent at an early age.",
                "{name} came into the world in {value}.",
            ], ["When was {name} born?", "In what year was {name} born?",
                "What is {name}'s year of birth?"]),
            "birthplace": _attr("place", [
                "{name} was born in the town of {value}.",
                "{name} grew up in {value}, the town where the composer was born.",
                "The composer's birthplace, {value}, now hosts a small festival in their honour.",
            ], ["Where was {name} born?", "What is {name}'s birthplace?",
                "In which town was {name} born?"]),
            "teacher": _attr("person", [
                "{name} studied composition under {value}.",
                "As a student, {name} took lessons from {value}.",
                "The most important teacher of {name} was {value}.",
            ], ["Who taught {name}?", "Who was {name}'s teacher?", "Under whom did {name} study?"]),
            "best_work": _attr("title", [
                "{name}'s best-known work is the suite {value}.",
                "The piece that made {name} famous is {value}.",
                "Audiences know {name} mainly for {value}.",
            ], ["What is {name}'s best-known work?", "Which piece made {name} famous?",
                "What is the most famous piece by {name}?"]),
            "instrument": _attr("pool instrument", [
                "{name} played the {value} in a touring orchestra.",
                "The {value} was {name}'s main instrument.",
                "{name} performed regularly on the {value}.",
            ], ["What instrument did {name} play?", "What was {name}'s main instrument?",
                "Which instrument did {name} perform on?"]),
            "works": _attr("num 12 400", [
                "In total, {name} wrote {value} works.",
                "The catalogue of {name} lists {value} compositions.",
                "Over a long career, {name} completed {value} pieces.",
            ], ["How many works did {name} write?", "How many compositions did {name} complete?",
                "How many pieces are in {name}'s catalogue?"]),
        },
    },
    {
        "domain": "gadget",
        "name": "{brand}",
        "intro": [
            "The {name} is a pocket-sized weather radio built for hikers and sailors who need forecasts far away from any phone signal.",
            "The {name} is a compact camera designed for travel photographers who want good pictures without carrying a heavy bag.",
            "The {name} is a handheld translator aimed at business travellers, with a small screen and a surprisingly clear speaker.",
            "The {name} is a smart thermostat intended for small apartments, where it learns the daily habits of the people living there.",
        ],
        "filler": [
            "Reviewers praised its simple controls and clear display, though a few wished the buttons were slightly larger.",
            "The packaging is made entirely from recycled cardboard and contains no plastic at all, which buyers appreciated.",
            "A later software update added a night mode, fixed several small bugs and made the menus easier to read.",
            "Some users complained that the printed manual was too short and left several features unexplained.",
        ],
        "attributes": {
            "maker": _attr("named Systems|Electronics|Devices", [
                "The {name} is made by {value}.",
                "{value} builds and sells the {name}.",
                "It is produced by the electronics firm {value}.",
            ], ["Who makes the {name}?", "Which company manufactures the {name}?",
                "Who produces the {name}?"]),
            "released": _attr("year 1985 2023", [
                "The {name} was released in {value}.",
                "The {name} first went on sale in {value}.",
                "It reached the shops in {value}.",
            ], ["When was the {name} released?", "In what year did the {name} go on sale?",
                "When did the {name} come out?"]),
            "price": _attr("price 19 899", [
                "The {name} sells for {value}.",
                "It costs {value} in most shops.",
                "At launch, the {name} was priced at {value}.",
            ], ["How much does the {name} cost?", "What is the price of the {name}?",
                "How much is the {name}?"]),
            "weight": _attr("num 60 900 grams", [
                "The {name} weighs {value}.",
                "It weighs just {value} with the battery fitted.",
                "At {value}, the {name} is light enough to carry all day.",
            ], ["How much does the {name} weigh?", "What is the weight of the {name}?",
                "How heavy is the {name}?"]),
            "colour": _attr("pool colour", [
                "The {name} comes in {value}.",
                "Its case is finished in {value}.",
                "Most buyers recognise the {name} by its {value} case.",
            ], ["What colour is the {name}?", "What colour is the case of the {name}?",
                "Which colour does the {name} come in?"]),
            "battery": _attr("num 4 72 hours", [
                "Its battery lasts about {value} on a single charge.",
                "A full charge keeps the {name} running for {value}.",
                "The {name} runs for {value} between charges.",
            ], ["How long does the battery of the {name} last?",
                "What is the battery life of the {name}?",
                "How long does the {name} run on one charge?"]),
        },
    },
    {
        "domain": "mountain",
        "name": "Mount {brand}",
        "intro": [
            "{name} is a jagged peak that dominates the skyline for miles around, its upper slopes bare and grey for most of the year.",
            "{name} is a snow-capped mountain popular with experienced climbers, who value its long ridges and quiet, empty valleys.",
            "{name} is a remote summit where the weather can change within minutes, turning a pleasant walk into a dangerous climb.",
        ],
        "filler": [
            "Mountain goats are often seen grazing on its lower slopes, and eagles circle above the cliffs in summer.",
            "Many climbers have been turned back by strong winds near the top, sometimes only a short distance from the summit.",
            "On clear days the view from the summit is said to reach all the way to the distant sea.",
            "Wildflowers cover the lower meadows in early summer, attracting painters, photographers and a great many bees.",
        ],
        "attributes": {
            "height": _attr("num 1200 8100 metres", [
                "{name} rises to {value} above sea level.",
                "The summit of {name} stands at {value}.",
                "{name} is {value} high.",
            ], ["How high is {name}?", "What is the height of {name}?", "How tall is {name}?"]),
            "first_ascent": _attr("year 1850 1990", [
                "{name} was first climbed in {value}.",
                "The first successful ascent of {name} took place in {value}.",
                "Nobody reached the top of {name} until {value}.",
            ], ["When was {name} first climbed?", "In what year was {name} first climbed?",
                "When did the first ascent of {name} happen?"]),
            "first_climber": _attr("person", [
                "The first person to reach its summit was {value}.",
                "{value} led the first successful climb of {name}.",
                "{name} was first climbed by {value}.",
            ], ["Who first climbed {name}?", "Who made the first ascent of {name}?",
                "Who first reached the summit of {name}?"]),
            "range": _attr("named Range|Mountains", [
                "{name} belongs to the {value}.",
                "{name} is the highest point of the {value}.",
                "The peak is part of the {value}.",
            ], ["Which range is {name} part of?", "What mountain range does {name} belong to?",
                "To which range does {name} belong?"]),
            "nearest_town": _attr("place", [
                "The nearest town to {name} is {value}.",
                "Climbers usually set out from {value}, the closest town.",
                "Most expeditions to {name} start in the town of {value}.",
            ], ["What is the nearest town to {name}?", "Which town is closest to {name}?",
                "From which town do climbers set out for {name}?"]),
            "rock": _attr("pool rock", [
                "{name} is made mostly of {value}.",
                "The rock of {name} is largely {value}.",
                "Geologists say that {name} is formed of {value}.",
            ], ["What rock is {name} made of?", "What is {name} mostly made of?",
                "What kind of rock forms {name}?"]),
        },
    },
    {
        "domain": "college",
        "name": "{brand} College",
        "intro": [
            "{name} is a small college with a tree-lined campus, an old library and a long tradition of teaching in small groups.",
            "{name} is a private college that teaches a wide range of subjects, from ancient languages to modern engineering.",
            "{name} is a teaching college with a strong tradition in the sciences and a reputation for demanding but friendly tutors.",
        ],
        "filler": [
            "Its library holds a rare collection of old sea charts, which scholars from other universities travel a long way to study.",
            "Every spring the students hold a rowing race on the lake, cheered on by crowds along the bank.",
            "The dining hall is lit by tall stained-glass windows and is used for concerts and debates in the evenings.",
            "Former students return each autumn for a reunion dinner that often runs well past midnight.",
        ],
        "attributes": {
            "founded": _attr("year", [
                "{name} was founded in {value}.",
                "{name} admitted its first students in {value}.",
                "The college opened its doors in {value}.",
            ], ["When was {name} founded?", "In what year did {name} open?",
                "When did {name} admit its first students?"]),
            "founder": _attr("person", [
                "{name} was founded by the philanthropist {value}.",
                "The college owes its start to {value}.",
                "A gift from {value} paid for the first buildings of {name}.",
            ], ["Who founded {name}?", "Who is the founder of {name}?",
                "Whose gift started {name}?"]),
            "city": _attr("place", [
                "{name} is located in the city of {value}.",
                "The campus of {name} lies on the edge of {value}.",
                "{name} is based in {value}.",
            ], ["Where is {name} located?", "In which city is {name}?",
                "Where is the campus of {name}?"]),
            "students": _attr("num 300 30000", [
                "{name} has {value} students.",
                "About {value} students are enrolled at {name}.",
                "The college teaches {value} students each year.",
            ], ["How many students does {name} have?", "How many students attend {name}?",
                "How many students are enrolled at {name}?"]),
            "rector": _attr("person", [
                "The college is headed by rector {value}.",
                "{value} is the current rector of {name}.",
                "Since taking office, rector {value} has expanded the library.",
            ], ["Who is the rector of {name}?", "Who heads {name}?", "Who leads {name} today?"]),
            "mascot": _attr("pool animal", [
                "The college mascot is a {value}.",
                "The sports teams of {name} use a {value} as their mascot.",
                "A statue of a {value}, the college mascot, stands by the gate.",
            ], ["What is the mascot of {name}?", "What animal is {name}'s mascot?",
                "Which animal is the mascot of {name}?"]),
        },
    },
]  # fmt: skip
