"""A labelled set of airline complaint posts for themes by meaning: varied texts with a known reason each.

Every post is built from pools of phrases: an opener, the complaint itself in
one of many wordings, sometimes a detail (now and then one that belongs to
another reason, as real complaints wander), an emotion, hashtags, handles,
links and typos; some posts are vague (the reason is known to the labeller,
not said in the words), some are retweets or copies of earlier posts, and
some are in Hebrew. The reasons share vocabulary (flight, hours, agent,
money), and the keywords of ``templates.toml`` appear in some posts only.

Each pool of wordings (English and Hebrew) is split in two halves by
position (even places: "dev", odd places: "test"); only the brands, handles
and links, which carry no meaning, are shared. The set tests the code; it chooses nothing: the clustering's knobs are
chosen on real labelled complaints (:mod:`crisiswatch.analysis.real_themes`),
since generated posts draw on the phrase pools a method could be shaped to.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, NamedTuple

Split = Literal["dev", "test"]

REASONS = (
    "cancelled_flight",
    "late_flight",
    "lost_luggage",
    "booking",
    "customer_service",
    "crew",
    "billing",
    "app_outage",
)
"""The complaint reasons, as a human labeller would give them."""


class ThemeRow(NamedTuple):
    """One labelled post: its text, the reason behind it and its language (ISO 639-1)."""

    text: str
    reason: str
    lang: str


BRANDS = ("SkyWay", "AeroNova", "BlueJet", "Jetly", "FlyHigh", "Cedar Air")
HANDLES = ("@SkyWayAir", "@AeroNova", "@BlueJetHelp", "@jetly", "@FlyHighCare", "@CedarAir")
USERS = ("@maya_k", "@tomr", "@dan_levi", "@JSmith88", "@travelgirl", "@noa", "@bizflyer", "@ronen_s")
LINKS = ("https://t.co/aB3xk9", "https://t.co/Zq81Lm", "http://bit.ly/3xFly", "https://t.co/k2Jd0w")

OPENERS = (
    "",
    "Seriously {handle}?",
    "Wow.",
    "{handle}",
    "Hey {brand},",
    "Unbelievable.",
    "So",
    "Just great.",
    "{handle} thanks for nothing.",
    "Day ruined.",
    "Ok {brand},",
    "Not again.",
    "Fantastic job {brand}.",
    "Can someone explain this?",
    "Ugh",
    "Dear {brand},",
)
CLOSERS = (
    "",
    "Never again.",
    "So angry right now.",
    "Worst airline ever.",
    "Unacceptable.",
    "I'm done with you.",
    "Thanks a lot.",
    "Absolutely furious.",
    "What a joke.",
    "Disappointed doesn't cover it.",
    "Sort it out!",
    "I want answers.",
    "Shameful.",
    "Exhausted and fed up.",
    "Zero stars.",
    "Do better.",
)
HASHTAGS = (
    "#fail",
    "#neveragain",
    "#travel",
    "#customerfail",
    "#airlinefail",
    "#badservice",
    "#vacation",
    "#help",
)
VAGUE = (
    "{brand} you ruined my whole trip.",
    "Worst experience I've had with {brand}, and I fly a lot.",
    "{handle} this is the last time I fly with you.",
    "I can't believe how {brand} treated us today.",
    "{brand} has gone downhill so fast.",
    "Never choosing {brand} again after today.",
    "{handle} what a nightmare of a day.",
    "Is anyone at {brand} even paying attention?",
)

PROBLEMS: dict[str, tuple[str, ...]] = {
    "cancelled_flight": (
        "{brand} cancelled my flight an hour before boarding",
        "my flight got cancelled and {brand} just shrugged",
        "they scrapped our 7am flight with no explanation",
        "flight cancelled, no rebooking until Thursday",
        "{brand} canceled the whole route and told us by text at midnight",
        "our connection was cancelled and we're stranded in Denver",
        "third cancellation this month from {brand}",
        "they pulled the flight off the board, just gone, cancelled",
        "cancelled flight and now I have to sleep at the airport",
        "{brand} axed my return flight and offered a voucher",
        "got to the gate and the flight was simply cancelled",
        "my honeymoon flight was cancelled with zero notice",
        "cancelling a full flight for 'operational reasons' again",
        "stranded: flight cancelled and every hotel is booked",
        "the flight home is cancelled and the next one is in two days",
        "woke up to an email saying my flight is cancelled",
    ),
    "late_flight": (
        "sitting on the tarmac for three hours now",
        "our flight is delayed again, now departing at 11pm",
        "boarding was pushed back four times",
        "{brand} flight landed 5 hours late and I missed my meeting",
        "still at the gate, departure time keeps moving",
        "delayed 6 hours and they keep saying 20 more minutes",
        "missed my connection because the first leg was so late",
        "we've been waiting to take off for ages",
        "the plane showed up three hours after schedule",
        "our departure slipped from noon to evening",
        "late again, every single {brand} flight this week",
        "stuck on the runway with the engines off",
        "the delay board just keeps adding hours",
        "two hour delay and the crew only just arrived",
        "my 8am flight left at 2pm",
        "they announced a delay, then another, then another",
    ),
    "lost_luggage": (
        "{brand} lost my bag on a direct flight",
        "my suitcase never came off the belt",
        "three days and still no sign of my luggage",
        "baggage claim empty, my bag is somewhere in Europe",
        "they lost both our suitcases on the way to the wedding",
        "the bag tracker says my luggage is in a different city",
        "waiting at the carousel for an hour, no bag",
        "my checked bag arrived destroyed and half empty",
        "lost luggage desk told me to come back tomorrow",
        "no clothes, no toiletries, {brand} misplaced my suitcase",
        "my bag went to Lisbon, I went to Rome",
        "filed a missing baggage report a week ago, nothing",
        "the suitcase with my medication is lost",
        "the baggage belt stopped and my bag wasn't on it",
        "my stroller and car seat never arrived at baggage claim",
        "they can't even tell me where my luggage is",
    ),
    "booking": (
        "can't change my reservation, the site keeps rejecting it",
        "{brand} booked me on the wrong date and won't fix it",
        "my seat assignment disappeared from my booking",
        "tried to rebook and lost my reservation entirely",
        "they changed my itinerary without asking",
        "the ticket I bought isn't showing under my booking reference",
        "name on the ticket is misspelled and they want a fee to fix it",
        "my confirmed seat was given to someone else",
        "booking confirmation never arrived",
        "upgrade I booked vanished from the reservation",
        "can't add a bag to my booking, keeps saying try later",
        "my reservation was split into two tickets for no reason",
        "they moved us to separate seats after we paid to sit together",
        "ticket number invalid at check-in even though I paid",
        "changing a flight date took 5 attempts and still failed",
        "my booking shows a different passenger name",
    ),
    "customer_service": (
        "on hold for 2 hours and then they hung up",
        "nobody answers the phone at {brand}",
        "the agent was rude and refused to help",
        "sent 4 emails, zero replies from {brand}",
        "chat support just sends canned answers",
        "customer service told me it's not their problem",
        "been waiting on the line since this morning",
        "the help desk closed while we were still in the queue",
        "your support team keeps transferring me around",
        "no one at the counter could give a straight answer",
        "DM'd you three days ago and still no response",
        "the call center disconnected me after an hour",
        "the representative laughed at my complaint",
        "asked for a supervisor and got ignored",
        "support ticket closed without anyone reading it",
        "waited in line at the service desk for 90 minutes",
    ),
    "crew": (
        "the flight attendant yelled at my kid",
        "cabin crew were rude the entire flight",
        "a stewardess rolled her eyes when I asked for water",
        "the crew ignored the call button for an hour",
        "flight attendants laughing at passengers, so unprofessional",
        "the purser threatened to remove us for asking a question",
        "crew member was condescending to my elderly mother",
        "attendant refused to help me lift my bag into the bin",
        "the steward shouted at a passenger in a wheelchair",
        "cabin staff spent the flight chatting in the galley",
        "flight attendant snapped at everyone during boarding",
        "the crew were dismissive when my daughter felt sick",
        "one attendant was so rude people started filming",
        "cabin crew skipped our row for drinks twice",
        "the pilot and crew treated us like cattle",
        "attendant told me to 'deal with it' when my seat was broken",
    ),
    "billing": (
        "{brand} charged my card twice for one ticket",
        "still waiting for my refund after 8 weeks",
        "they billed me for a seat I never got",
        "hidden fees doubled the price at checkout",
        "my refund was promised in 7 days, it's been two months",
        "extra baggage charge even though bags were included",
        "money taken from my account for a cancelled booking",
        "overcharged for a change fee that should be free",
        "credit card statement shows three {brand} payments",
        "they refunded a voucher instead of my money",
        "charged a no-show fee when they cancelled the flight",
        "the price jumped after I entered my card details",
        "where is my money {brand}",
        "paid for wifi, got charged and it never worked",
        "a duplicate payment of $480 and no reimbursement",
        "refund request denied with no reason",
    ),
    "app_outage": (
        "the {brand} app won't load at all",
        "website is down and I can't check in",
        "app crashes every time I open my boarding pass",
        "can't log in to the app, error after error",
        "{brand} site has been offline all morning",
        "the check-in page just spins forever",
        "app says 'something went wrong' on every screen",
        "online check-in broken for the third day",
        "the mobile boarding pass disappeared after the update",
        "the whole {brand} website is throwing 500 errors",
        "your app logged me out and won't let me back in",
        "kiosks and the app are both down at the airport",
        "the login page keeps timing out",
        "the app froze while I was paying",
        "website won't accept my password reset",
        "entire booking system seems to be offline",
    ),
}
"""The complaint itself, in many wordings per reason ({brand} and {handle} are filled in)."""

DETAILS: dict[str, tuple[str, ...]] = {
    "cancelled_flight": (
        "No hotel, no meal voucher, nothing.",
        "The next available seat is on Saturday.",
        "We had to buy tickets on another airline.",
        "They didn't even say why.",
        "200 people stranded at the terminal.",
        "Kids crying, we have nowhere to sleep.",
    ),
    "late_flight": (
        "No food, no water, no updates.",
        "The pilot blamed 'paperwork'.",
        "I'll miss my sister's wedding at this rate.",
        "Three hours of 'just a few more minutes'.",
        "The screen still says on time, lol.",
        "We've watched four other planes leave.",
    ),
    "lost_luggage": (
        "Had to buy clothes for the whole week.",
        "The tag number shows nothing in their system.",
        "It had my work laptop inside.",
        "Nobody at the airport knows anything.",
        "Brand new suitcase, gone.",
        "My kids have no clothes for the trip.",
    ),
    "booking": (
        "Paid for it months ago.",
        "The confirmation code does nothing.",
        "We're a family of five and now spread across the plane.",
        "The website and the agent say different things.",
        "Booked everything for my parents and now this.",
        "The itinerary changed twice in one day.",
    ),
    "customer_service": (
        "Your hold music is burned into my brain.",
        "Every agent says something different.",
        "Three hours of my life gone.",
        "Not one person has actually helped.",
        "Is there a human there at all?",
        "They keep closing my case.",
    ),
    "crew": (
        "Everyone around us was shocked.",
        "I have it on video.",
        "Never been spoken to like that on a plane.",
        "The passengers were kinder than the crew.",
        "My kid was in tears.",
        "Train your staff.",
    ),
    "billing": (
        "My bank says it's on your side.",
        "That's rent money.",
        "I have the receipts.",
        "I want every cent back.",
        "Calling my bank for a chargeback.",
        "This is basically theft.",
    ),
    "app_outage": (
        "Tried on wifi and mobile data.",
        "Reinstalled it twice already.",
        "Queue at the desk is 200 people because of it.",
        "Screenshot attached.",
        "Other apps work fine.",
        "Cleared the cache, still nothing.",
    ),
}
"""Optional details after the complaint, per reason (sometimes borrowed by another reason)."""

HEBREW_PROBLEMS: dict[str, tuple[str, ...]] = {
    "cancelled_flight": (
        "{brand} ביטלו לי את הטיסה שעה לפני ההמראה",
        "הטיסה שלנו בוטלה ואין טיסה חלופית עד יום חמישי",
        "ביטול טיסה בלי שום הסבר, תקועים בשדה",
        "קיבלתי הודעה באמצע הלילה שהטיסה מבוטלת",
        "ביטלו את הטיסה חזרה והציעו שובר",
        "שוב ביטול, כבר הפעם השלישית החודש",
    ),
    "late_flight": (
        "יושבים במטוס על המסלול כבר שלוש שעות",
        "הטיסה מתעכבת שוב, עכשיו ההמראה ב-11 בלילה",
        "עיכוב של שש שעות וכל פעם אומרים עוד עשרים דקות",
        "פספסתי את הטיסה ההמשך כי הטיסה הראשונה איחרה",
        "המטוס הגיע באיחור של חמש שעות",
        "דחו את העלייה למטוס ארבע פעמים",
    ),
    "lost_luggage": (
        "{brand} איבדו לי את המזוודה בטיסה ישירה",
        "המזוודה שלי לא יצאה מהמסוע",
        "שלושה ימים ועדיין אין זכר לכבודה שלי",
        "התיק שלי נסע לאתונה ואני לרומא",
        "הגשתי דיווח על מזוודה אבודה לפני שבוע ואין תשובה",
        "מחכים ליד המסוע כבר שעה ואין מזוודות",
    ),
    "customer_service": (
        "מחכה על הקו שעתיים ואז ניתקו לי",
        "אף אחד לא עונה בטלפון של {brand}",
        "הנציגה הייתה גסה וסירבה לעזור",
        "שלחתי ארבעה מיילים ולא קיבלתי אף תשובה",
        "שירות הלקוחות אמר שזו לא הבעיה שלהם",
        "מעבירים אותי מנציג לנציג כבר שעה",
    ),
    "billing": (
        "{brand} חייבו אותי פעמיים על אותו כרטיס",
        "עדיין מחכה להחזר כספי אחרי חודשיים",
        "גבו ממני עמלה על שינוי שהיה אמור להיות בחינם",
        "ירד לי כסף מהכרטיס על הזמנה שבוטלה",
        "המחיר קפץ אחרי שהכנסתי את פרטי האשראי",
        "במקום החזר כספי קיבלתי שובר",
    ),
}
"""Hebrew complaints for the reasons a Hebrew-writing brand's customers raise most."""
HEBREW_OPENERS = ("", "{handle}", "באמת {brand}?", "לא ייאמן.", "שוב?", "{brand} תסבירו לי,", "יום הרוס.", "נו באמת.")
HEBREW_CLOSERS = ("", "בושה וחרפה.", "לא טסים איתכם יותר.", "נמאס!", "זלזול מוחלט.", "אין מילים.", "מחפיר.", "עצוב.")
HEBREW_VAGUE = (
    "{brand} הרסתם לי את כל החופשה.",
    "{handle} זו הפעם האחרונה שאני טס איתכם.",
    "איזה יום סיוט עם {brand}.",
    "אין לי מילים על היחס של {brand} היום.",
)


def _half(pool: Sequence[str], split: Split) -> Sequence[str]:
    return pool[0::2] if split == "dev" else pool[1::2]


def _typo(text: str, rng: random.Random) -> str:
    """One slip of the fingers in one longer word: two letters swapped or one dropped."""
    words = text.split(" ")
    long_words = [i for i, word in enumerate(words) if len(word) > 4 and word.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    word = words[i]
    j = rng.randrange(1, len(word) - 2)
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :] if rng.random() < 0.5 else word[:j] + word[j + 1 :]
    return " ".join(words)


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part).strip()


def _post(reason: str, lang: str, split: Split, rng: random.Random, vague_share: float) -> str:
    brand = rng.choice(BRANDS)
    handle = HANDLES[BRANDS.index(brand)]
    if lang == "he":
        problems = _half(HEBREW_PROBLEMS[reason], split)
        body = rng.choice(_half(HEBREW_VAGUE, split)) if rng.random() < vague_share else rng.choice(problems)
        text = _join(rng.choice(_half(HEBREW_OPENERS, split)), body, rng.choice(_half(HEBREW_CLOSERS, split)))
    else:
        if rng.random() < vague_share:
            body = rng.choice(_half(VAGUE, split))
        else:
            body = rng.choice(_half(PROBLEMS[reason], split))
            body = body[0].upper() + body[1:] + rng.choice((".", "!", "!!", "", "..."))
            if rng.random() < 0.5:
                borrowed = rng.random() < 0.25
                source = rng.choice([r for r in REASONS if r != reason]) if borrowed else reason
                body = _join(body, rng.choice(_half(DETAILS[source], split)))
        text = _join(rng.choice(_half(OPENERS, split)), body, rng.choice(_half(CLOSERS, split)))
        if rng.random() < 0.15:
            text = _typo(text, rng)
        if rng.random() < 0.5:
            text = text.lower() if rng.random() < 0.7 else text
    if rng.random() < 0.3:
        text = _join(text, *rng.sample(_half(HASHTAGS, split), rng.randint(1, 2)))
    if rng.random() < 0.2:
        text = _join(text, rng.choice(LINKS))
    return text.format(brand=brand, handle=handle)


def theme_rows(
    seed: int, size: int = 2000, split: Split = "dev", *, hebrew_share: float = 0.15, copy_share: float = 0.12
) -> list[ThemeRow]:
    """``size`` labelled posts drawn from one half of the phrase pools; the same seed and split give the same rows.

    Reasons are unevenly common (as in a real storm, where one cause
    dominates). About ``copy_share`` of the posts repeat an earlier one as a
    retweet, with another handle or link, or in other case and punctuation.
    Hebrew posts (``hebrew_share``) cover the reasons with Hebrew wordings.
    """
    rng = random.Random(f"{seed}:{split}")
    reasons = list(REASONS)
    weights = [rng.uniform(0.5, 2.0) for _ in reasons]
    rows: list[ThemeRow] = []
    while len(rows) < size:
        if rows and rng.random() < copy_share:
            original = rng.choice(rows)
            kind = rng.randrange(3)
            if kind == 0:
                text = f"RT {rng.choice(USERS)}: {original.text}"
            elif kind == 1:
                text = _join(rng.choice(USERS), original.text, rng.choice(LINKS))
            else:
                text = original.text.upper().rstrip(".!") + "!!!"
            rows.append(ThemeRow(text, original.reason, original.lang))
            continue
        hebrew = rng.random() < hebrew_share
        pool = list(HEBREW_PROBLEMS) if hebrew else reasons
        reason = rng.choices(pool, weights=[weights[REASONS.index(r)] for r in pool])[0]
        lang = "he" if hebrew else "en"
        rows.append(ThemeRow(_post(reason, lang, split, rng, vague_share=0.08), reason, lang))
    return rows


def incident_rows(seed: int, size: int = 40, split: Split = "dev", *, reasons: int = 2) -> list[ThemeRow]:
    """A small incident as an alert sees it: ``size`` posts about only ``reasons`` reasons, from one pool half.

    An alert's posts are a few dozen, mostly about one to three things; the
    large sets of :func:`theme_rows` say nothing about how a method does on
    those, where a lexical method has few posts to learn synonyms from.
    """
    rng = random.Random(f"incident:{seed}:{split}")
    chosen = set(rng.sample(REASONS, reasons))
    pool = [row for row in theme_rows(seed, size * len(REASONS) * 2, split) if row.reason in chosen]
    return pool[:size]
