"""Rebuild train.csv, validation.csv and test.csv of the support-intents data set.

The lessons read the committed CSVs; this script only documents (and can reproduce, byte for
byte) how they were made. Run it from anywhere:

    python courses/02_finetuning/data/support_intents/make_support_intents.py

Every template below was written by hand for this course. Slots in braces are filled from the
shared lists further down; the *same* nouns (plan, order, account, card, app...) appear in many
intents on purpose, so that the intent is carried by what the customer wants done, not by the topic
words alone.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 20240607
PER_INTENT = 75
SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2}
HERE = Path(__file__).resolve().parent

TEMPLATES: dict[str, list[str]] = {
    "billing_question": [
        "why was I charged {amount} on {date}",
        "I don't understand the {amount} charge on my {card} statement",
        "can you explain what the {amount} line on my invoice is for",
        "my bill for the {plan} plan is higher than usual this month",
        "what is the {amount} fee on my account",
        "I see two charges from you on {date}, which one is correct",
        "when will I be billed for the {plan} plan",
        "how is the price of my {plan} subscription calculated",
        "where can I download the invoice for order {order_id}",
        "is tax included in the {amount} you charged me",
        "my invoice shows a different amount than the {plan} price on your website",
        "I need a copy of last month's invoice for my accountant",
        "what day of the month do you charge my {card}",
        "the receipt for {order_id} has the wrong company name, can you fix the invoice",
        "there is a charge of {amount} I don't recognise",
        "could you break down the charges on my latest bill",
        "why does my statement say {amount} when the {plan} plan costs less",
        "am I paying for the {plan} plan monthly or yearly",
    ],
    "refund_request": [
        "I want my money back for order {order_id}",
        "please refund the {amount} you charged me on {date}",
        "I returned the {product} last week, when do I get my refund",
        "can I get a refund for the {plan} plan, I never used it",
        "the {product} arrived broken and I would like a full refund",
        "you charged me twice, please return the extra {amount}",
        "how long does a refund take to reach my {card}",
        "I was promised a refund for {order_id} but nothing has arrived yet",
        "give me a refund, the {product} is not what I ordered",
        "I'd like to be reimbursed for the {amount} I paid by mistake",
        "refund my last payment please, I cancelled before the renewal",
        "is it possible to get my money back on the {product}",
        "the {product} stopped working after two days, I want a refund not a replacement",
        "please send the refund for order {order_id} to my {card}",
        "what is your refund policy for the {plan} plan",
        "I paid {amount} for something I never received, refund it please",
        "could you reverse the {amount} charge and refund me",
    ],
    "password_reset": [
        "I forgot my password",
        "how do I reset my password on the {platform}",
        "the password reset email never arrives",
        "I can't log in, it says my password is wrong",
        "please send me a link to change my password",
        "my account is locked after too many login attempts",
        "the reset link says it has expired",
        "I want to change my password, where is that setting",
        "locked out of my account on the {platform}, need a new password",
        "how can I recover my login if I no longer have access to my old email",
        "the {platform} keeps rejecting my password even after I reset it",
        "I need to set a new password for {email}",
        "can't sign in, forgot the password for my {plan} account",
        "help me get back into my account, I don't remember my password",
        "the two-factor code doesn't arrive so I can't log in",
        "how often do I have to change my password",
    ],
    "shipping_status": [
        "where is my order {order_id}",
        "my {product} hasn't arrived yet, can you track it",
        "what is the delivery status of order {order_id}",
        "when will my {product} be delivered",
        "the tracking number for {order_id} doesn't work",
        "my package was supposed to come on {date} and it's still not here",
        "has my order {order_id} shipped yet",
        "can you tell me which courier is bringing my {product}",
        "the tracking page says delivered but I have no {product}",
        "how long does shipping take to my country",
        "is my {product} still in the warehouse",
        "I ordered the {product} on {date}, where is it now",
        "my parcel has been stuck in transit for a week",
        "give me an update on the delivery of {order_id}",
        "what's the estimated arrival date for my {product}",
        "did you send my order to the right address",
    ],
    "cancel_subscription": [
        "I want to cancel my {plan} subscription",
        "how do I stop my subscription from renewing",
        "please cancel my {plan} plan at the end of this billing period",
        "cancel my membership, I don't use it anymore",
        "turn off auto-renewal for my {plan} plan",
        "I'd like to end my subscription before the next charge on {date}",
        "stop charging my {card} every month, cancel the plan",
        "where is the button to cancel the {plan} plan",
        "I no longer need the {plan} subscription, please end it",
        "can I cancel my plan now and keep access until {date}",
        "unsubscribe me from the {plan} plan",
        "I signed up for the free trial, how do I cancel before I'm billed",
        "please make sure my subscription does not renew on {date}",
        "end my {plan} subscription effective immediately",
        "the app won't let me cancel my subscription",
        "I want to quit the monthly plan",
    ],
    "technical_issue": [
        "the {platform} crashes every time I open it",
        "I get an error {error_code} when I try to upload a file",
        "the {platform} is very slow since the last update",
        "nothing happens when I press the save button",
        "the {product} won't connect to wifi",
        "the sync between my phone and the {platform} stopped working",
        "I keep seeing error {error_code} on the dashboard",
        "the page is blank after I log in",
        "my {product} keeps restarting on its own",
        "notifications stopped working on the {platform}",
        "the export to PDF is broken, it gives {error_code}",
        "videos won't play in the {platform}",
        "the {platform} freezes when I open the settings",
        "your service has been down for me since {date}",
        "the {product} firmware update failed halfway",
        "I can't upload photos, the progress bar gets stuck at 99%",
        "search returns no results even for things I know exist",
    ],
    "upgrade_plan": [
        "I want to upgrade from the {plan} plan to {plan2}",
        "how do I move to a bigger plan",
        "what do I get if I switch to the {plan2} plan",
        "can I upgrade my {plan} subscription in the middle of the month",
        "please change my plan to {plan2}, we need more seats",
        "how much more is the {plan2} plan than {plan}",
        "I need more storage, which plan should I upgrade to",
        "add five more users to our account by upgrading the plan",
        "is there a discount if I upgrade to the yearly {plan2} plan",
        "I'd like to try the {plan2} features, can I upgrade for a month",
        "we're growing, upgrade us to {plan2}",
        "will my data stay the same if I upgrade to {plan2}",
        "my team hit the limit of the {plan} plan, what are the upgrade options",
        "how do I unlock the premium features",
        "switch my account to a higher tier please",
        "what's the price to go from {plan} to {plan2}",
    ],
    "talk_to_human": [
        "I want to talk to a real person",
        "can I speak to an agent please",
        "connect me with customer service",
        "is there a phone number I can call",
        "this bot is not helping, get me a human",
        "I need to speak with someone about my {plan} account",
        "transfer me to a support agent",
        "let me chat with a person instead",
        "who can I talk to about order {order_id}",
        "please have someone call me back",
        "can a manager contact me about my complaint",
        "I'd rather explain this to a human",
        "operator please",
        "get me a live agent now",
        "is anyone from your team available to talk",
        "I have been going in circles with the assistant, I need a person",
    ],
    "update_payment": [
        "I need to change the card on my account",
        "how do I update my payment method",
        "my {card} expired, where do I enter the new one",
        "please replace my {card} with a different card",
        "can I pay by bank transfer instead of {card}",
        "I want to add PayPal as a payment option",
        "remove my old {card} from the account",
        "the new card I entered is being declined",
        "update the billing card for my {plan} subscription",
        "switch my payments to a company card",
        "how do I change the card you charge each month",
        "I got a new {card}, please use it for future payments",
        "can I store a second card as a backup payment method",
        "my payment failed because the card details are outdated",
        "where can I edit my billing details and card number",
        "set my default payment method to the new card",
    ],
    "close_account": [
        "please delete my account",
        "I want to close my account permanently",
        "how do I remove all my data and delete the account for {email}",
        "delete everything you have about me",
        "close my account and erase my personal information",
        "I no longer want an account with you, remove it",
        "can you permanently delete the account registered to {email}",
        "deactivate my profile and delete my data",
        "I want my account gone, not just the subscription",
        "what happens to my files if I delete my account",
        "remove my user account from the {platform}",
        "under GDPR I request deletion of my account",
        "shut down my account for good",
        "how do I delete my account on the {platform}",
        "I'm leaving your service, delete my login and history",
        "erase my account and confirm when it's done",
    ],
}

SLOTS = {
    "amount": ["$9.99", "$19.99", "$49", "$120", "€15", "€79.00", "£12.50", "$240", "$4.99", "€300"],
    "date": ["March 3", "the 15th", "Monday", "last Friday", "June 1", "yesterday", "the 28th", "April 12"],
    "card": ["credit card", "debit card", "Visa", "Mastercard", "Amex card", "bank card"],
    "plan": ["Basic", "Starter", "Pro", "Team", "Family", "Student", "Premium", "Business"],
    "plan2": ["Pro", "Business", "Enterprise", "Premium", "Team", "Ultimate"],
    "order_id": ["#48213", "#10937", "A-5521", "#77802", "ORD-3391", "#20456", "B-1184", "#66120"],
    "product": ["headphones", "smart watch", "router", "camera", "speaker", "tablet", "keyboard", "charger"],
    "platform": ["app", "website", "desktop app", "iPhone app", "Android app", "web portal"],
    "email": ["anna.k@example.com", "my work email", "j.smith@example.org", "my old gmail address"],
    "error_code": ["500", "E-402", "0x80070005", "403", "ERR_TIMEOUT", "E1023"],
}

OPENERS = ["", "", "", "hi, ", "hello, ", "hey ", "good morning, ", "excuse me, ", "quick question: ", "hi there. "]
CLOSERS = ["", "", "", "", " thanks", " thank you!", " please", " asap", "?", ".", " thx", " - it's urgent"]


def fill(template: str, rng: random.Random) -> str:
    values = {name: rng.choice(options) for name, options in SLOTS.items()}
    if values["plan2"] == values["plan"]:
        values["plan2"] = "Enterprise"
    return template.format(**values)


def vary(text: str, rng: random.Random) -> str:
    """Surface variation a real inbox has: greetings, sign-offs, capitals, a missing apostrophe."""
    text = rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    style = rng.random()
    if style < 0.25:
        text = text.lower()
    elif style < 0.75:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.15:
        text = text.replace("'", "")
    return text


def examples_for(templates: list[str], count: int, rng: random.Random, used: set[str]) -> list[str]:
    """``count`` distinct queries, cycling through ``templates`` so each is used evenly."""
    out: list[str] = []
    attempt = 0
    while len(out) < count:
        text = vary(fill(templates[attempt % len(templates)], rng), rng)
        attempt += 1
        if text.lower() not in used:
            used.add(text.lower())
            out.append(text)
    return out


def main() -> None:
    """Split by *template*, not by example: a test query is never a re-filled training template,
    so held-out accuracy measures generalisation to new phrasings."""
    rng = random.Random(SEED)
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLIT}
    used: set[str] = set()
    for intent, templates in TEMPLATES.items():
        templates = templates[:]
        rng.shuffle(templates)
        n_val = max(2, round(SPLIT["validation"] * len(templates)))
        n_test = max(2, round(SPLIT["test"] * len(templates)))
        groups = {
            "validation": templates[:n_val],
            "test": templates[n_val:n_val + n_test],
            "train": templates[n_val + n_test:],
        }
        for name, group in groups.items():
            count = round(SPLIT[name] * PER_INTENT)
            splits[name] += [(t, intent) for t in examples_for(group, count, rng, used)]
    for name, rows in splits.items():
        rng.shuffle(rows)
        with open(HERE / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["text", "intent"])
            writer.writerows(rows)
        print(f"{name}: {len(rows)} examples")


if __name__ == "__main__":
    main()
