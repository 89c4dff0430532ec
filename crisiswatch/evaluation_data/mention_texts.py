"""The phrase pools of the synthetic brand-mention streams: what their posts say, by language and sentiment.

:mod:`crisiswatch.ingest.scenario` fills ``{brand}``, ``{handle}`` and
``{tag}`` from a brand's traffic and draws a crisis's posts from its theme.
"""

from __future__ import annotations

from dataclasses import dataclass

THEMES: dict[str, tuple[str, ...]] = {
    "outage": (
        "{brand} app is down again, I can't log in at all. Useless.",
        "Is {handle} down? Nothing loads and I need to pay rent today #{tag}down",
        "{handle} your service has been broken for an hour, this is unacceptable",
        "Can't access my account on {brand}. Error after error. Furious.",
        "Total outage at {brand} and not a word from them. Terrible.",
        "{brand} down AGAIN. How hard is it to keep a website running?? #{tag}",
    ),
    "delay": (
        "Stuck at the gate for 4 hours, {handle} won't tell us anything. Worst airline.",
        "{brand} delayed my order for the third time, never buying from them again",
        "Three hours waiting and {brand} just cancelled. Awful. #{tag}fail",
        "{handle} my delivery is a week late and nobody answers. Disgraceful.",
    ),
    "billing": (
        "{brand} charged me twice this month and support just ignores me. Scam.",
        "Double charged by {handle} again. Give me my money back!",
        "Hidden fees everywhere, {brand} is robbing its customers #{tag}",
        "{brand} billing is a mess, overcharged three times. Done with them.",
    ),
    "customer service": (
        "Two hours on hold with {brand} and they hung up on me. Rude and useless.",
        "{handle} your support agents are the rudest people I have ever dealt with",
        "Worst customer service ever, {brand} doesn't care about its customers",
    ),
    "product defect": (
        "My new {brand} phone overheats and shuts down. Absolute garbage.",
        "{handle} the update bricked my device. Furious, it's completely broken",
        "{brand} quality has gone downhill, mine broke after two days #{tag}",
    ),
    "safety": (
        "My {brand} charger caught fire last night. This is dangerous, recall it now!",
        "{handle} your product burned my kid's hand. Horrified and angry.",
    ),
    "data/privacy": (
        "{brand} leaked my personal data?! Got an email from a stranger with my details. Scary.",
        "Data breach at {handle} and they hid it for weeks. Disgusting.",
    ),
}

NEUTRAL_TEXTS: tuple[str, ...] = (
    "Does anyone know if {brand} is open on Sunday?",
    "{handle} what time does the new store open tomorrow?",
    "Switching my plan to {brand} next month, will see how it goes",
    "{brand} announced new opening hours for the holidays",
    "Reading the {brand} quarterly report this morning",
    "Heading to the {brand} office for a meeting",
    "{handle} is there a student discount?",
    "Just saw a {brand} ad on the bus",
)
POSITIVE_TEXTS: tuple[str, ...] = (
    "Loving the new {brand} app update, so smooth!",
    "Shout out to {handle} support, they fixed my problem in minutes. Great service!",
    "{brand} never lets me down, best in the business #{tag}",
    "Thank you {handle}! Amazing experience today",
    "So happy with my {brand} purchase, highly recommend",
)
NEGATIVE_TEXTS: tuple[str, ...] = (
    "Not impressed with {brand} lately, getting worse",
    "{handle} still waiting for a reply to my complaint. Disappointed.",
    "{brand} prices keep going up and service keeps going down",
)
VIRAL_POSITIVE_TEXTS: tuple[str, ...] = (
    "This {brand} ad is the best thing I've seen all year 😂❤️ #{tag}",
    "Everyone watch the new {brand} commercial, absolutely brilliant!",
    "{handle} that surprise for your customers made my day, love it!",
)


HEBREW_THEMES: dict[str, tuple[str, ...]] = {
    "outage": (
        "האפליקציה של {brand} לא עובדת שוב, אני לא מצליח להתחבר בכלל. בושה וחרפה.",
        "{handle} האתר קרס ואף אחד לא עונה. נמאס כבר מהזלזול הזה!",
        "תקלה אצל {brand} כבר שעתיים ואין שום הודעה. שירות מחפיר.",
        "{brand} נפל שוב, איך אפשר לעבוד ככה?? #{tag}",
        "{handle} השירות שלכם לא עובד כבר שעה, זה פשוט לא מקובל ומבזה",
        "שוב אין קליטה ושוב {brand} שותקים. גרוע ביותר, עוזב אותם.",
    ),
}
"""Crisis texts in Hebrew, for brands whose customers write Hebrew (themes without them fall back to English)."""
HEBREW_NEUTRAL_TEXTS: tuple[str, ...] = (
    "מישהו יודע אם {brand} פתוחים בשבת?",
    "{handle} באיזו שעה נפתח הסניף החדש מחר?",
    "{brand} פרסמו שעות פתיחה חדשות לחגים",
    "{handle} יש הנחה לסטודנטים?",
    "ראיתי פרסומת של {brand} באוטובוס הבוקר",
)
HEBREW_POSITIVE_TEXTS: tuple[str, ...] = (
    "כל הכבוד {brand}, השירות היה מעולה היום!",
    "תודה רבה {handle}! פתרו לי את הבעיה תוך דקות, אלופים",
    "{brand} הכי טובים שיש, ממליץ בחום #{tag}",
    "האפליקציה החדשה של {brand} פשוט מדהימה, כל הכבוד",
)
HEBREW_NEGATIVE_TEXTS: tuple[str, ...] = (
    "{brand} מאכזבים לאחרונה, רק הולך ומחמיר",
    "{handle} עדיין מחכה לתשובה על התלונה שלי. מאוכזב.",
)
HEBREW_VIRAL_POSITIVE_TEXTS: tuple[str, ...] = (
    "הפרסומת החדשה של {brand} הכי טובה שראיתי השנה 😂❤️ #{tag}",
    "{handle} ההפתעה ללקוחות שימחה אותי מאוד, תודה!",
)


@dataclass(frozen=True)
class Texts:
    """The text pools one language's posts are drawn from."""

    neutral: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    viral: tuple[str, ...]
    themes: dict[str, tuple[str, ...]]

    def crisis(self, theme: str) -> tuple[str, ...]:
        """The crisis texts of ``theme`` in this language, or in English when this language has none."""
        return self.themes.get(theme) or THEMES[theme]


TEXTS: dict[str, Texts] = {
    "en": Texts(NEUTRAL_TEXTS, POSITIVE_TEXTS, NEGATIVE_TEXTS, VIRAL_POSITIVE_TEXTS, THEMES),
    "he": Texts(
        HEBREW_NEUTRAL_TEXTS, HEBREW_POSITIVE_TEXTS, HEBREW_NEGATIVE_TEXTS, HEBREW_VIRAL_POSITIVE_TEXTS, HEBREW_THEMES
    ),
}
"""Text pools by language (ISO 639-1), for :attr:`BrandTraffic.language`."""
