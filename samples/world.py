"""The cast of the sample world: four reps, the four accounts that have calls, and the calls.

Only customer turns carry cue labels (the eight labels of pipeline.types.CUE_LABELS);
`hard_negatives` lists turns that look like a cue but are not one; `requests` lists what the
customer asked the rep to do later (the reminder stage's input).
"""

from __future__ import annotations

# rep name -> the voice the rep speaks with in English calls
REPS = {
    "Maya Okafor": "flite:slt",
    "Owen Hale": "flite:rms",
    "Callum Reid": "flite:awb",
    "Daniel Brandt": "flite:kal",
}

# The accounts that have calls; the CRM generator gives them histories that fit their calls.
ACCOUNTS_FIXED = {
    "ACC-1003": {
        "name": "Kestrel Dental Group",
        "segment": "SMB",
        "rep": "Maya Okafor",
        "created": "2021-03-08",
        "profile": "at_risk_kestrel",
    },
    "ACC-1007": {
        "name": "Brightwell Foods",
        "segment": "Mid-Market",
        "rep": "Owen Hale",
        "created": "2020-06-15",
        "profile": "growing_brightwell",
    },
    "ACC-1012": {
        "name": "Alder & Finch Architects",
        "segment": "Mid-Market",
        "rep": "Callum Reid",
        "created": "2022-01-10",
        "profile": "at_risk_alder",
    },
    "ACC-1018": {
        "name": "Lindqvist Maschinenbau GmbH",
        "segment": "Enterprise",
        "rep": "Daniel Brandt",
        "created": "2019-09-02",
        "profile": "steady_lindqvist",
    },
}

# Contacts the calls mention, so the CRM knows them (name, role, added).
CALL_CONTACTS = {
    "ACC-1003": [
        ("Graham Pike", "Practice Manager", "2021-03-08"),
        ("Rachel Dunn", "Office Manager", "2026-10-19"),
    ],
    "ACC-1007": [("Hannah Cole", "Purchasing Lead", "2020-06-15")],
    "ACC-1012": [
        ("Laura Quinn", "Office Manager", "2022-01-10"),
        ("Victor Stann", "Head of Procurement, Halden Group", "2026-08-24"),
    ],
    "ACC-1018": [
        ("Jonas Weber", "Einkaufsleiter", "2019-09-02"),
        ("Anna Berg", "Purchasing Coordinator", "2023-04-17"),
    ],
}


def _t(speaker: str, text: str, *labels: str) -> dict:
    return {"speaker": speaker, "text": text, "labels": list(labels)}


R, C = "rep", "customer"

CALLS = [
    {
        "call_id": "call_01",
        "file": "call_01.flac",
        "format": "flac",
        "layout": "stereo",
        "account_id": "ACC-1003",
        "date": "2026-10-06",
        "language": "en",
        "seed_offset": 1,
        "call_type": "renewal",
        "customer": "Graham Pike (Practice Manager)",
        "voices": {"rep": "flite:slt", "customer": "flite:rms"},
        "hard_negatives": [{"index": 4, "speaker": "rep", "type": "rep"}],
        "turns": [
            _t(R, "Hi Graham, it's Maya from Ridgeway. Is now still a good time to talk?"),
            _t(C, "Hi Maya. Yes, I have about ten minutes before the next patient."),
            _t(
                R,
                "Great. Your supply agreement renews at the end of November, so I wanted to go "
                "through it with you.",
            ),
            _t(C, "Good, because I have some questions about it."),
            _t(
                R,
                "Sure. The price per box stays the same as this year, and delivery is still free "
                "above five hundred dollars.",
            ),
            _t(
                C,
                "Honestly, that is the problem. Can you send me a quote with a better price for "
                "next year?",
                "pricing_request",
            ),
            _t(R, "I can look at volume pricing. What are you comparing us with?"),
            _t(
                C,
                "Vendora came in last week, and they offered the same gloves and masks for "
                "about fifteen percent less.",
                "competitor_mention",
                "pricing_request",
            ),
            _t(R, "I understand. Their delivery times are not the same as ours, though."),
            _t(
                C,
                "Maybe. But the partners want to cut costs, and if the numbers do not change, "
                "we will not renew in November.",
                "cancellation_intent",
            ),
            _t(
                R,
                "Thanks for being open with me. I will talk to my manager and come back with an "
                "offer this week.",
            ),
            _t(
                C,
                "Please do. And send me the notice period in the contract, so I know where we "
                "stand.",
                "cancellation_intent",
            ),
            _t(R, "Will do. Thanks, Graham, talk soon."),
            _t(C, "Thanks Maya, bye."),
        ],
    },
    {
        "call_id": "call_02",
        "file": "call_02.mp3",
        "format": "mp3",
        "layout": "mono",
        "account_id": "ACC-1003",
        "date": "2026-10-27",
        "language": "en",
        "seed_offset": 2,
        "call_type": "billing",
        "customer": "Graham Pike (Practice Manager)",
        "voices": {"rep": "flite:slt", "customer": "flite:rms"},
        "hard_negatives": [{"index": 8, "speaker": "rep", "type": "rep"}],
        "turns": [
            _t(
                R,
                "Hi Graham, Maya again. I have the new offer ready, but first, you wrote to us "
                "about an invoice?",
            ),
            _t(
                C,
                "Yes. The October invoice charges us for forty boxes of masks, and we only "
                "received twenty five.",
                "invoice_dispute",
            ),
            _t(R, "I am sorry about that. Let me check the delivery note."),
            _t(C, "We will not pay that invoice until it is corrected.", "invoice_dispute"),
            _t(
                R,
                "That is fair. I will ask billing to send a credit note for the fifteen boxes "
                "today.",
            ),
            _t(
                C,
                "Thank you. To be honest, the September invoice will be late as well. Cash is "
                "tight this quarter, so we need another thirty days.",
                "payment_delay",
            ),
            _t(R, "I can ask finance to extend the terms for that one."),
            _t(
                C,
                "That would help. We are ordering a lot less anyway, since the second practice "
                "is closed on Fridays now.",
                "usage_decline",
            ),
            _t(
                R,
                "I see that in the orders. About the offer, I can do ten percent off if you "
                "commit to twelve months.",
            ),
            _t(C, "I will take it to the partners. They meet next month."),
            _t(R, "Great. Shall I send it by email?"),
            _t(
                C,
                "Yes, please send it to me and to our new office manager, Rachel. She makes "
                "the purchasing decisions now.",
                "org_change",
            ),
            _t(R, "Will do. Thanks, Graham."),
            _t(C, "Bye, Maya."),
        ],
    },
    {
        "call_id": "call_03",
        "file": "call_03.wav",
        "format": "wav-ulaw8k",
        "layout": "stereo",
        "account_id": "ACC-1007",
        "date": "2026-09-22",
        "language": "en",
        "seed_offset": 3,
        "call_type": "check_in",
        "customer": "Hannah Cole (Purchasing Lead)",
        "voices": {"rep": "flite:rms", "customer": "flite:slt"},
        "hard_negatives": [
            {"index": 5, "speaker": "customer", "type": "res"},
            {"index": 6, "speaker": "rep", "type": "rep"},
            {"index": 9, "speaker": "customer", "type": "neg"},
        ],
        "turns": [
            _t(
                R,
                "Hi Hannah, Owen from Ridgeway here. Just a quick check in. How are things in "
                "the kitchens?",
            ),
            _t(
                C,
                "Hi Owen. We are busy, in a good way. We opened a new site in Manchester last "
                "month.",
            ),
            _t(R, "Congratulations. How is the ordering going with the extra site?"),
            _t(C, "Very smooth. The team likes the new portal, and the deliveries arrive on time."),
            _t(R, "Good to hear. Any problems with the last few shipments?"),
            _t(
                C,
                "One pallet arrived damaged in the summer, but your team replaced it the next "
                "day, so that is all sorted.",
            ),
            _t(
                R,
                "Glad it got fixed. Just so you know, the price list for next year goes up by "
                "about three percent.",
            ),
            _t(C, "That is fine, we expected that."),
            _t(R, "Some customers tell me other suppliers are calling them a lot at the moment."),
            _t(
                C,
                "They call us too, but we are not looking at other vendors. We are happy where "
                "we are.",
            ),
            _t(R, "That is great to hear. Is there anything else you need from me?"),
            _t(C, "Not right now. Maybe send me the catalogue for the new cleaning products."),
            _t(R, "I will send it today. Thanks, Hannah."),
            _t(C, "Thanks, Owen. Bye."),
        ],
    },
    {
        "call_id": "call_04",
        "file": "call_04.ogg",
        "format": "ogg",
        "layout": "mono",
        "account_id": "ACC-1007",
        "date": "2026-11-04",
        "language": "en",
        "seed_offset": 4,
        "call_type": "upsell",
        "customer": "Hannah Cole (Purchasing Lead)",
        "voices": {"rep": "flite:rms", "customer": "flite:slt"},
        "hard_negatives": [{"index": 2, "speaker": "rep", "type": "rep"}],
        "turns": [
            _t(R, "Hi Hannah, it's Owen. Did you get a chance to look at the cleaning range?"),
            _t(C, "I did. We would like to start with the green cleaning line at both locations."),
            _t(
                R,
                "Great choice. For two locations I would suggest the monthly bundle. It comes to "
                "about four hundred dollars a month.",
            ),
            _t(C, "That sounds reasonable. Can we add it to the regular order from December?"),
            _t(R, "Yes, I will add it to your standing order. Do you want the dispensers as well?"),
            _t(C, "Yes, six dispensers please, three for each kitchen."),
            _t(R, "Perfect. The dispensers are free with the bundle."),
            _t(
                C,
                "Even better. Our operations director was very happy with your service this "
                "year, by the way.",
            ),
            _t(R, "That is kind of her. Shall we meet again in the new year for a review?"),
            _t(
                C,
                "Yes, let us do that. We open a third location in the spring, so we will need "
                "more.",
            ),
            _t(R, "Exciting. I will send the order confirmation today."),
            _t(C, "Thanks, Owen. Have a good week."),
            _t(R, "You too. Bye."),
        ],
    },
    {
        "call_id": "call_05",
        "file": "call_05.flac",
        "format": "flac",
        "layout": "stereo",
        "account_id": "ACC-1012",
        "date": "2026-09-29",
        "language": "en",
        "seed_offset": 5,
        "call_type": "QBR",
        "customer": "Laura Quinn (Office Manager)",
        "voices": {"rep": "flite:awb", "customer": "flite:slt"},
        "hard_negatives": [],
        "turns": [
            _t(
                R,
                "Hi Laura, Callum from Ridgeway. Thanks for making time for the quarterly review.",
            ),
            _t(C, "Hi Callum. Sure, though things are a bit unsettled here."),
            _t(R, "Oh? What is going on?"),
            _t(
                C,
                "We were acquired by the Halden Group in the summer, and their purchasing team "
                "now signs off on all suppliers.",
                "org_change",
            ),
            _t(R, "I see. Do you know who I should talk to there?"),
            _t(C, "A man called Victor Stann. I have not met him yet.", "org_change"),
            _t(R, "I would be glad to introduce myself. How is the team using the print service?"),
            _t(
                C,
                "Less than before. Two of our offices stopped sending plans to you, they use "
                "the Halden print room now.",
                "usage_decline",
            ),
            _t(R, "That explains the smaller orders. Is there anything we could do better?"),
            _t(
                C,
                "Support, honestly. The same ticket about the scanner has been open for three "
                "weeks, and nobody calls us back.",
                "support_frustration",
            ),
            _t(R, "I am sorry, that should not happen. I will escalate it today."),
            _t(
                C,
                "Thank you. It is the third time this year we have had to chase you.",
                "support_frustration",
            ),
            _t(R, "Understood. I will give you an update by Friday."),
            _t(C, "Okay, talk then."),
        ],
    },
    {
        "call_id": "call_06",
        "file": "call_06.m4a",
        "format": "m4a",
        "layout": "stereo",
        "account_id": "ACC-1012",
        "date": "2026-11-10",
        "language": "en",
        "seed_offset": 6,
        "call_type": "renewal",
        "customer": "Laura Quinn (Office Manager)",
        "voices": {"rep": "flite:awb", "customer": "flite:slt"},
        "hard_negatives": [{"index": 1, "speaker": "customer", "type": "res"}],
        "requests": [{"index": 11, "type": "callback", "in_days": 14, "due": "2026-11-24"}],
        "turns": [
            _t(R, "Hi Laura, Callum here. Is the scanner working again?"),
            _t(C, "It is, thanks. It works fine now."),
            _t(R, "Good. I wanted to follow up on the contract for next year."),
            _t(
                C,
                "Right. I have to be honest with you. Halden has a group deal with Northwind, and "
                "they want us to run a trial with them in December.",
                "competitor_mention",
            ),
            _t(R, "I understand. What would it take for us to stay your supplier?"),
            _t(
                C,
                "Mostly the price. Northwind is about twenty percent cheaper on large format "
                "printing.",
                "competitor_mention",
                "pricing_request",
            ),
            _t(R, "We can look at that. Can you share what volume they quoted?"),
            _t(
                C,
                "I can't share their offer. But we will cut the contract down to one office "
                "from January.",
                "cancellation_intent",
            ),
            _t(R, "That is a big change. Is that decision final?"),
            _t(C, "For now, yes. Victor makes the call."),
            _t(R, "Could we set up a meeting with Victor?"),
            _t(
                C,
                "Maybe. He is travelling right now. Call me back in two weeks, I should know "
                "more by then.",
            ),
            _t(R, "I will. Thanks, Laura."),
            _t(C, "Bye, Callum."),
        ],
    },
    {
        "call_id": "call_07",
        "file": "call_07.flac",
        "format": "flac",
        "layout": "stereo",
        "account_id": "ACC-1018",
        "date": "2026-10-14",
        "language": "de",
        "seed_offset": 7,
        "call_type": "check_in",
        "customer": "Jonas Weber (Einkaufsleiter)",
        "voices": {"rep": "espeak-ng:de+m3", "customer": "espeak-ng:de"},
        "hard_negatives": [],
        "turns": [
            _t(
                R, "Guten Tag Herr Weber, hier ist Daniel Brandt von Ridgeway. Haben Sie kurz Zeit?"
            ),
            _t(C, "Guten Tag Herr Brandt. Ja, ein paar Minuten habe ich."),
            _t(R, "Ich wollte hören, wie es mit der letzten Lieferung gelaufen ist."),
            _t(C, "Alles ist gut angekommen, danke. Die Qualität ist wie immer sehr gut."),
            _t(R, "Das freut mich. Brauchen Sie im nächsten Quartal mehr Material?"),
            _t(C, "Ja, etwa zehn Prozent mehr. Wir haben einen neuen Auftrag bekommen."),
            _t(R, "Sehr schön. Ich schicke Ihnen bis Freitag ein Angebot."),
            _t(
                C,
                "Danke. Noch eine Sache. Wir bezahlen die Rechnung für September erst im "
                "Dezember, wegen unseres Jahresabschlusses.",
                "payment_delay",
            ),
            _t(R, "Verstanden, ich gebe das an unsere Buchhaltung weiter."),
            _t(C, "Vielen Dank. Sonst ist alles in Ordnung."),
            _t(R, "Dann wünsche ich Ihnen eine gute Woche."),
            _t(C, "Ihnen auch. Auf Wiederhören."),
        ],
    },
    {
        "call_id": "call_08",
        "file": "call_08.flac",
        "format": "flac",
        "layout": "mono",
        "account_id": "ACC-1018",
        "date": "2026-11-12",
        "language": "en",
        "seed_offset": 8,
        "call_type": "price_update",
        "customer": "Anna Berg (Purchasing Coordinator)",
        "voices": {"rep": "flite:kal", "customer": "flite:slt"},
        "hard_negatives": [
            {"index": 2, "speaker": "rep", "type": "rep"},
            {"index": 3, "speaker": "customer", "type": "neut"},
            {"index": 5, "speaker": "customer", "type": "res"},
            {"index": 7, "speaker": "customer", "type": "neg"},
        ],
        "turns": [
            _t(
                R,
                "Hello Anna, Daniel from Ridgeway. I am calling about the price update for next "
                "year.",
            ),
            _t(C, "Hello Daniel. Yes, I saw your email."),
            _t(
                R,
                "The new price list goes up by four percent from January. I wanted to explain why.",
            ),
            _t(C, "No need, it is in line with the market. We are fine with the new prices."),
            _t(
                R,
                "Thank you. Last month you had a problem with a delivery of machine parts. Is "
                "that resolved?",
            ),
            _t(C, "Yes, completely. Your support team fixed it within a day. No complaints."),
            _t(R, "Good. Some customers are changing suppliers this year, so I like to check in."),
            _t(C, "We have no plans to change suppliers, and we are not cancelling anything."),
            _t(R, "That is good to hear. Jonas mentioned a new project?"),
            _t(C, "Yes, so our orders will go up in the new year."),
            _t(R, "Great. I will send the quote Jonas asked for."),
            _t(C, "Perfect. Thanks for calling, Daniel."),
            _t(R, "Thank you, Anna. Goodbye."),
        ],
    },
]
