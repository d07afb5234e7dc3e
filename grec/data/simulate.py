"""A telecom storefront simulator with ground truth, so GRec can be trained and checked end to end.

The tables follow the contract in :mod:`grec.data.schema` (customers, items, impressions). Every
impression also stores the *true* probabilities of its funnel (click, add-to-cart given click,
purchase given add-to-cart), so any model can be compared with the best possible score (the oracle).

The generative story, and why each effect exists
------------------------------------------------
World (fixed by the seed, shared by every table):

* **Items.** A catalogue of phones (flagship, mid-range, budget), tablets, smartwatches, audio,
  cases and chargers. Brands make some categories only; phones, tablets and watches carry the OS of
  their brand (Apple: iOS, the others: Android), accessories have OS 0. Price comes from category,
  brand premium, tier noise and storage; rating and promotions vary per item. Each item has a latent
  vector ``v`` built from its category, brand, OS, price tier and noise, and a popularity bias.
  Image and text embeddings are two different fixed random linear maps of ``[v, one-hot category,
  one-hot brand]`` plus noise, L2-normalised: like CLIP outputs they reveal the item's attributes
  (and its latent vector) without being them.
* **Customers.** Each has a latent taste ``u``. The first dimensions of ``u`` line up with the
  first dimensions of ``v`` (OS loyalty, premium taste, youthful taste, a regional taste), and the
  observed profile is generated *from* ``u`` with noise: ``device_os`` follows OS loyalty,
  ``monthly_bill`` and ``plan_type`` follow premium taste, ``age_band`` follows youthful taste and
  ``region`` shifts the regional taste (``PROFILE_NOISE``, ``REGION_TASTE_LOADING``). The profile is
  a fairly tight read of those four dimensions, so most of the taste that matters is visible in
  context; the other dimensions are hidden and can only be recovered from behaviour (the viewed
  items, search intent), and the funnel weighs them less (``TASTE_HIDDEN_WEIGHT``) so that the
  observed features carry most of the signal, as in real logs where a good model gets close to
  the best possible. About a fifth of the customers are prospects: no tenure, plan, lines, bill.

Impressions (one row = one item shown to one customer):

* **When and in which flow.** Timestamps are uniform over days of the train and test windows with a
  diurnal pattern inside the day. Prospects are always in the NSE flow; existing customers are in
  EUP (upgrade) or AAL (add a line), EUP more likely the older their device.
* **Why the customer came (intent).** Each impression has an intent category drawn from the flow's
  category affinity (AAL: budget phones, watches, tablets; EUP: flagships and accessories; NSE:
  mid-range phones), the customer's taste and the categories of the recently viewed items (people
  come back for what they were looking at); search impressions sometimes also intend a brand.
  The intent is *visible* on search rows (the query text spells it out, with modifiers, noise words
  and a few typos and brand-only queries) and on category browse pages (the page id); elsewhere it
  is hidden, but the viewed-item sequence hints at it.
* **What is shown (logging policy).** Popularity times flow affinity, except: search rows show the
  searched category (and brand) about half the time, browse pages mostly show their category, some
  home-page rows re-target a recently viewed item, and the deals page shows promoted items. The
  position in the carousel (0-5) and the channel are random, the page follows from the above.
* **History.** Each customer has a time-ordered history of views sampled with probability
  proportional to ``exp(taste . v + popularity)``, each with the page it was viewed on; an
  impression carries the last ``L`` views before its time (``L`` in 0..20, shorter for prospects).
  Because views follow taste, the sequence is where a model can recover the hidden taste.

Labels follow a funnel, each step a logistic function of its *own* mix of effects (the named terms
of ``_logit_terms``), with a small per-impression noise inside the true probability (sigma 0.1 in
logit for clicks, 0.2 for the later steps):

* **Click**: flow x category affinity, item popularity, price relative to its category (flow
  specific sensitivity), discounts (NSE loves promotions), a flow-specific taste interaction
  ``(w * u)^T A_f v`` with ``A_f = I + perturbation_f`` (flows share structure but want different
  things; ``w`` down-weights the hidden taste dims), intent match (large on search rows, where a
  phone of another tier still counts as mostly relevant and an unrelated item is penalised; a
  small boost where the intent is hidden), recently viewed items (strong), position (lower slots
  click less), channel, and device age in the upgrade flow. The large effects are the visible ones
  (query vs item, page vs item, viewed item, position, flow x category), so a model on observed
  features gets within a few points of the oracle; the hidden taste, hidden intent, the phone tier
  a "phone" query meant and the noise keep the oracle just out of reach.
* **Add to cart | click**: affordability (monthly instalment vs the bill, or a hidden budget for
  prospects), accessories being impulse adds, discounts, rating and a different taste transform.
* **Purchase | add to cart**: tenure (loyal customers complete), flow (NSE faces credit checks;
  a hidden credit score matters), discount, retail-store assistance, and a little taste.

The rates stay those of real logs (clicks about 3% of impressions, add-to-cart about a quarter of
clicks, purchases under a tenth of clicks, fewer for prospects), and the oracle AUCs sit around
0.72-0.85 per use case.

Everything is vectorised numpy (only the search query strings and the few hundred item descriptions
are formatted in Python) and deterministic under ``SimulationConfig.seed``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from grec.data.schema import (
    CUSTOMERS,
    FLOWS,
    IMPRESSIONS,
    ITEMS,
    USE_CASE_LABEL,
    USE_CASE_POPULATION,
    USE_CASES,
    TaskVocabulary,
    oracle_scores,
)
from grec.data.contract import TELECOM, Contract, list_array, write_tables
from grec.io import write_json

# --------------------------------------------------------------------------------------------
# Catalogue vocabulary
# --------------------------------------------------------------------------------------------

CATEGORIES: tuple[str, ...] = (
    "flagship_phone",
    "midrange_phone",
    "budget_phone",
    "tablet",
    "smartwatch",
    "audio",
    "case",
    "charger",
)
FLAGSHIP, MIDRANGE, BUDGET, TABLET, WATCH, AUDIO, CASE, CHARGER = range(len(CATEGORIES))
N_CATEGORIES = len(CATEGORIES)
PHONES = (FLAGSHIP, MIDRANGE, BUDGET)
# Share of the catalogue per category (cases and audio have many SKUs, flagships few).
CATEGORY_SHARE = np.array([0.10, 0.12, 0.12, 0.10, 0.10, 0.14, 0.20, 0.12])
# List price before brand, tier and storage adjustments, USD.
CATEGORY_BASE_PRICE = np.array([1000.0, 480.0, 190.0, 520.0, 330.0, 140.0, 45.0, 35.0])
# What a customer types for a category (the first word set is the most common).
CATEGORY_QUERY_WORDS: tuple[tuple[str, ...], ...] = (
    ("flagship phone", "pro phone", "premium smartphone", "phone"),
    ("smartphone", "mid range phone", "phone", "android phone"),
    ("cheap phone", "budget phone", "prepaid phone", "phone"),
    ("tablet", "tab", "tablet 5g"),
    ("smartwatch", "smart watch", "watch"),
    ("earbuds", "headphones", "wireless earbuds", "speaker"),
    ("case", "phone case", "screen protector", "cover"),
    ("charger", "fast charger", "usb c cable", "wireless charger"),
)
# A regular expression per category that a simple query-match feature can look for (tests and
# sanity checks use it; brand-only queries and typos escape it, as they would in real logs).
CATEGORY_KEYWORD: tuple[str, ...] = (
    r"\bphone|smartphone", r"\bphone|smartphone", r"\bphone|smartphone", r"\btab", r"watch",
    r"earbud|headphone|speaker", r"\bcase|protector|cover", r"charger|cable",
)

OS_NONE, OS_IOS, OS_ANDROID = 0, 1, 2


@dataclass(frozen=True)
class Brand:
    name: str
    os: int  # OS of its phones, tablets and watches (accessories always have OS_NONE)
    weights: dict[int, float]  # category -> relative number of SKUs this brand has there
    premium: float  # price multiplier
    query: dict[int, str]  # category -> the word people search for ("iphone"); default: name


BRANDS: tuple[Brand, ...] = (
    Brand("Apple", OS_IOS, {FLAGSHIP: 4, MIDRANGE: 2, TABLET: 4, WATCH: 4, AUDIO: 2, CASE: 1, CHARGER: 1}, 1.15,
          {FLAGSHIP: "iphone", MIDRANGE: "iphone", TABLET: "ipad", WATCH: "apple watch", AUDIO: "airpods"}),
    Brand("Samsung", OS_ANDROID, {FLAGSHIP: 4, MIDRANGE: 4, BUDGET: 3, TABLET: 3, WATCH: 3, AUDIO: 2, CASE: 1,
                                  CHARGER: 1}, 1.05, {FLAGSHIP: "galaxy", MIDRANGE: "galaxy", BUDGET: "galaxy"}),
    Brand("Google", OS_ANDROID, {FLAGSHIP: 2, MIDRANGE: 2, WATCH: 1, AUDIO: 1}, 1.0,
          {FLAGSHIP: "pixel", MIDRANGE: "pixel", WATCH: "pixel watch"}),
    Brand("Motorola", OS_ANDROID, {MIDRANGE: 2, BUDGET: 4}, 0.85, {MIDRANGE: "moto", BUDGET: "moto"}),
    Brand("OnePlus", OS_ANDROID, {FLAGSHIP: 1, MIDRANGE: 2, BUDGET: 1, AUDIO: 1}, 0.9, {}),
    Brand("TCL", OS_ANDROID, {BUDGET: 3, TABLET: 1}, 0.7, {}),
    Brand("OtterBox", OS_NONE, {CASE: 4}, 1.1, {}),
    Brand("ZAGG", OS_NONE, {CASE: 3, CHARGER: 1}, 1.0, {}),
    Brand("Belkin", OS_NONE, {CHARGER: 3, CASE: 1}, 1.0, {}),
    Brand("Anker", OS_NONE, {CHARGER: 3, AUDIO: 2}, 0.85, {}),
    Brand("JBL", OS_NONE, {AUDIO: 3}, 1.0, {}),
    Brand("Beats", OS_NONE, {AUDIO: 2}, 1.2, {}),
)
N_BRANDS = len(BRANDS)
# Which brands make which categories; brand x category weights drive catalogue and intents.
BRAND_CATEGORY_WEIGHT = np.array([[b.weights.get(k, 0.0) for k in range(N_CATEGORIES)] for b in BRANDS])
BRAND_OS = np.array([b.os for b in BRANDS])
BRAND_PREMIUM = np.array([b.premium for b in BRANDS])
OS_CATEGORIES = (FLAGSHIP, MIDRANGE, BUDGET, TABLET, WATCH)  # categories whose items carry an OS

# Catalogue text (descriptions only: these do not feed any probability).
SERIES: dict[tuple[int, int], str] = {
    (0, FLAGSHIP): "iPhone Pro", (0, MIDRANGE): "iPhone", (0, TABLET): "iPad", (0, WATCH): "Apple Watch",
    (0, AUDIO): "AirPods", (0, CASE): "Silicone Case", (0, CHARGER): "MagSafe Charger",
    (1, FLAGSHIP): "Galaxy S", (1, MIDRANGE): "Galaxy A5", (1, BUDGET): "Galaxy A1", (1, TABLET): "Galaxy Tab",
    (1, WATCH): "Galaxy Watch", (1, AUDIO): "Galaxy Buds", (1, CASE): "Smart View Cover",
    (1, CHARGER): "Super Fast Charger", (2, FLAGSHIP): "Pixel Pro", (2, MIDRANGE): "Pixel a",
    (2, WATCH): "Pixel Watch", (2, AUDIO): "Pixel Buds", (3, MIDRANGE): "moto g stylus", (3, BUDGET): "moto g",
    (4, FLAGSHIP): "OnePlus", (4, MIDRANGE): "Nord", (4, BUDGET): "Nord N", (4, AUDIO): "Buds",
    (5, BUDGET): "ION", (5, TABLET): "Tab", (6, CASE): "Defender", (7, CASE): "InvisibleShield",
    (7, CHARGER): "PowerStation", (8, CHARGER): "BoostCharge", (8, CASE): "ScreenForce", (9, CHARGER): "Nano",
    (9, AUDIO): "Soundcore", (10, AUDIO): "Tune", (11, AUDIO): "Studio Buds",
}
CATEGORY_PHRASE = (
    "flagship smartphone", "mid-range smartphone", "budget smartphone", "tablet", "smartwatch",
    "wireless earbuds", "protective case", "fast charger",
)
COLORS = ("black", "white", "blue", "graphite", "silver", "green", "pink", "titanium")
PHONE_STORAGE_GB = np.array([64, 128, 256, 512, 1024])
PHONE_STORAGE_P = np.array([  # per phone category: flagships come with more storage
    [0.00, 0.30, 0.40, 0.20, 0.10],
    [0.15, 0.50, 0.30, 0.05, 0.00],
    [0.55, 0.40, 0.05, 0.00, 0.00],
])
TABLET_STORAGE_GB, TABLET_STORAGE_P = np.array([64, 128, 256, 512]), np.array([0.3, 0.35, 0.25, 0.1])
WATCH_STORAGE_GB, WATCH_STORAGE_P = np.array([16, 32, 64]), np.array([0.3, 0.5, 0.2])
DISCOUNT_SHARE = 0.25  # share of items on promotion
DISCOUNT_LEVELS = np.array([5, 10, 15, 20, 25, 30, 40, 50], dtype=float)
DISCOUNT_LEVEL_P = np.array([0.12, 0.22, 0.18, 0.18, 0.1, 0.1, 0.06, 0.04])

# --------------------------------------------------------------------------------------------
# Pages, channels, regions
# --------------------------------------------------------------------------------------------

HOME, SEARCH_RESULTS, DEALS, CART, ACCOUNT = range(5)
FLOW_LANDING_PAGE = 5  # + flow index: the AAL, EUP and NSE landing pages
BROWSE_PAGE = FLOW_LANDING_PAGE + len(FLOWS)  # + category: category browse (listing) pages
DETAIL_PAGE = BROWSE_PAGE + N_CATEGORIES  # + category: product detail pages
N_STRUCTURED_PAGES = DETAIL_PAGE + N_CATEGORIES  # 24; any further page ids are generic content pages

WEB, APP, STORE = range(3)  # channel codes, as in the schema
CHANNEL_P_EXISTING = np.array([0.45, 0.45, 0.10])
CHANNEL_P_PROSPECT = np.array([0.70, 0.10, 0.20])
CHANNEL_LOYALTY = 0.75  # share of a customer's impressions on their preferred channel

N_REGIONS = 8
REGION_WEIGHTS = np.linspace(1.5, 0.5, N_REGIONS) / np.linspace(1.5, 0.5, N_REGIONS).sum()  # big to small
REGION_TASTE_SHIFT = 1.2  # regions differ in taste along REGION_DIM, from -1.2 to +1.2
N_AGE_BANDS = 6  # 18-24, 25-34, 35-44, 45-54, 55-64, 65+
N_PLAN_TYPES = 4  # 1..4 for customers, 0: none (prospect)

# Relative traffic per hour of day (UTC): quiet nights, a lunch bump and an evening peak.
DIURNAL_WEIGHTS = np.array([
    1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3.2, 3.6, 3.9,
    4.3, 4.2, 3.8, 3.6, 3.7, 4.0, 4.6, 5.2, 5.4, 4.8, 3.4, 2.0,
])

# --------------------------------------------------------------------------------------------
# Latent structure
# --------------------------------------------------------------------------------------------

LATENT_DIM = 8  # taste u and item vector v; dims 0-3 are tied to observed features, 4-7 hidden
OS_DIM, PREMIUM_DIM, YOUTH_DIM, REGION_DIM = range(4)
N_OBSERVED_DIMS = 4
TASTE_HIDDEN_WEIGHT = 0.4  # weight of the hidden taste dims in the funnel's taste terms
TASTE_DIM_WEIGHT = np.where(np.arange(LATENT_DIM) < N_OBSERVED_DIMS, 1.0, TASTE_HIDDEN_WEIGHT)
# How youthful a category's appeal is (watches and earbuds for the young, tablets for kids).
CATEGORY_YOUTH = np.array([0.3, 0.0, -0.2, 0.3, 0.8, 1.0, 0.2, 0.0])
PROSPECT_SHARE = 0.2
# Drift scenarios for the monitoring weeks (SimulationConfig.drift).
DRIFTS = ("flow_shift", "price_change", "device_launch", "concept")
# A concept drift: from the drift's start, what makes a customer click turns around (tastes move on:
# the flow's favoured categories, the popular items and the recently viewed ones now put people
# off) while who visits and what is shown stay the same: the inputs and the champion's scores do
# not move, its ranking quality does. Those click terms are multiplied by this.
CONCEPT_CLICK_TERMS, CONCEPT_FACTOR = ("affinity", "popularity", "viewed"), -1.0
FLOW_SHIFT_PROSPECT_BOOST = 4.0  # a new-customer promotion: prospects visit four times as often
PRICE_CHANGE_FACTOR = 1.25  # phones cost a quarter more and their promotions end
LAUNCH_ITEMS = 6  # a device launch: successors of the six most popular flagship phones...
LAUNCH_HYPE = 1.5  # ...more popular than their predecessors by this (log scale)...
LAUNCH_PRICE_FACTOR = 1.1  # ...and a tenth dearer
# Noise (relative to the taste dim it follows) in the observed profile, and how much of the regional
# taste the region explains: the smaller the noise, the more of the taste the context reveals.
PROFILE_NOISE = {"device_os": 0.3, "age_band": 0.45, "plan_type": 0.6}
REGION_TASTE_LOADING = 0.8
MAX_SEQ_LEN = 20
PROSPECT_MAX_SEQ_LEN = 8
HISTORY_GROWTH = 20  # views a customer adds over the whole window (the history evolves with time)

# Flow x category affinity (log scale): why each flow exists. Rows follow FLOWS (AAL, EUP, NSE).
FLOW_CATEGORY_AFFINITY = np.array([
    # flag  mid  budget tablet watch audio case charger
    [-0.4, 0.0, 0.7, 0.6, 0.7, -0.2, -0.5, -0.5],  # AAL: a line for a kid or a watch/tablet
    [0.9, 0.2, -0.7, -0.4, -0.3, 0.3, 0.5, 0.3],  # EUP: upgrading to a flagship, plus accessories
    [0.0, 0.8, 0.4, -0.4, -0.6, -0.5, -0.6, -0.6],  # NSE: switching with a good mid-range phone
])
INTENT_AFFINITY_SCALE = 1.3  # intents are sharper than the click affinity
INTENT_TASTE_SCALE = 0.8  # how much taste moves the intent category
INTENT_HISTORY_SCALE = 3.0  # how much the recently viewed categories move it (per share of the views)
BRAND_INTENT_SHARE = 0.4  # search rows that also name a brand
BRAND_INTENT_OS_LOYALTY = 1.2  # how strongly OS taste picks the brand searched for
FLOW_PERTURBATION = 0.35  # size of A_f - I: flows share taste structure but weigh it differently

# Share of impressions per page type (non-search rows), and how the policy fills them.
SEARCH_SHARE = np.array([0.28, 0.24, 0.33])  # per flow: prospects search more
SEARCH_SHOWS_INTENT = 0.5  # search results show the searched category this often
SEARCH_SHOWS_BRAND = 0.6  # ... and, with a brand intent, that brand's items this often
BROWSE_SHOWS_INTENT = 0.75
PAGE_TYPE_P = {"browse": 0.30, "landing": 0.33, "home": 0.22, "deals": 0.10, "detail": 0.05}
# With `pages` (SimulationConfig): the surface of each impression is a task token beside the flow
# (tasks = flow x surface x use case, the paper's "Home Page (AAL CTCVR)"), and each surface
# converts at its own rate (logit offsets on add-to-cart and purchase): a deals page's shoppers
# add to cart readily, an accessory shown on another product's page (detail) is an afterthought,
# search results convert on intent. Without `pages` none of it is drawn or applied.
SURFACES = ("search", *PAGE_TYPE_P)  # search results, then the page types in PAGE_TYPE_P's order
# With `checkout_pages` too: two surfaces of the checkout path, the paper's "Accessory Interstitial
# Page" and the cart page, taken from landing- and home-page rows by a stream of their own (every
# other row is the six-surface storefront's, draw for draw):
# - the accessory interstitial, shown once a phone is in the cart (the customer's most recently
#   viewed phone, which their history shows): an accessory or a watch on the cart's page; it
#   converts readily, and on whether the accessory fits that phone (its maker's own, a third
#   party's, or a watch of its OS: a Samsung case does not fit an iPhone): history against candidate;
# - the cart page: a recently viewed item (CART_SHOWS_VIEWED) or a popular accessory; it converts on
#   the item being one the customer viewed.
CHECKOUT_SURFACES = ("interstitial", "cart")
CHECKOUT_SHARE = {"interstitial": 0.35, "cart": 0.25}  # of the landing and home rows (interstitial: with a viewed phone)
CART_SHOWS_VIEWED = 0.5
CHECKOUT_STREAM = 96  # the checkout surfaces draw from default_rng([seed, CHECKOUT_STREAM])
SURFACE_ATC = np.array([0.35, 0.1, -0.15, -0.35, 0.45, -0.6, 0.2, 0.3])
SURFACE_PURCHASE = np.array([0.25, 0.0, -0.1, -0.3, 0.3, -0.45, 0.5, 0.2])
# ...and each surface has its own reasons to add to cart (a term of the add-to-cart logit on its rows
# only), as pages do: search results convert on the searched category (SEARCH: per related item,
# less half), browse listings on ratings (BROWSE: per star above 4), a flow's landing page on what
# the flow came for (LANDING: times the flow x category affinity), the home page on taste (HOME:
# times the add-to-cart taste interaction), deals on the discount (DEALS: per % off), and a product
# page's cross-sell on whether the item goes with the product shown (DETAIL: an accessory or watch
# on a phone's page; anything else there a third of it less). So a surface's tasks rank differently,
# not only at another rate: what a router that reads the surface can learn and one that does not
# cannot. Measured: benchmarks/results/many_tasks.md, "What the surface tells a ranking".
SURFACE_FIT_SEARCH, SURFACE_FIT_BROWSE, SURFACE_FIT_LANDING = 1.0, 1.0, 0.8
SURFACE_FIT_HOME, SURFACE_FIT_DEALS, SURFACE_FIT_DETAIL = 1.0, 0.06, 1.2
SURFACE_FIT_INTERSTITIAL, SURFACE_FIT_CART = 1.6, 1.2  # per fitting accessory, per viewed item (less half)
GOES_WITH_A_PHONE = (WATCH, AUDIO, CASE, CHARGER)
RETARGET_SHARE = 0.25  # home-page rows re-targeting a recently viewed item (when there is one)
POLICY_POPULARITY = 0.8  # the logging policy follows popularity, a bit flattened

# Click logit.
CLICK_BASE = np.array([-4.6, -4.5, -4.7])  # per flow
CLICK_POPULARITY = 0.3
CLICK_AFFINITY = 0.9  # scale of FLOW_CATEGORY_AFFINITY in the click logit
CLICK_PRICE_SENSITIVITY = np.array([0.6, 0.2, 0.7])  # per flow, on log price vs category median
CLICK_DISCOUNT = np.array([0.1, 0.05, 0.15])  # per flow, per 10% off
CLICK_TASTE = 0.2
CLICK_INTENT = {"search": 1.4, "browse": 0.8, "hidden": 0.15}  # intent match boost by page kind
CLICK_TIER_SHARE = 0.85  # share of the intent boost a phone of another tier still earns
CLICK_BRAND_INTENT = 0.8  # extra when the searched brand matches
CLICK_SEARCH_MISMATCH = -0.7  # searchers ignore what they did not ask for
CLICK_VIEWED = 1.2  # a recently viewed item is more likely clicked
CLICK_POSITION = -0.22  # per carousel slot
CLICK_CHANNEL = np.array([0.0, 0.25, 0.35])  # web, app, store (assisted)
CLICK_DEVICE_AGE = 0.03  # per month of device age beyond two years, on phones in EUP
CLICK_DEVICE_AGE_PIVOT = 24.0
CLICK_BROWSE_PAGE = 0.2  # extra pull of the category browse page on its own category

# Add-to-cart-given-click logit.
ATC_BASE = np.array([-1.75, -1.65, -1.95])
ATC_CATEGORY = np.array([-0.2, 0.0, 0.1, -0.1, 0.0, 0.3, 0.5, 0.5])  # accessories are impulse adds
ATC_AFFORDABILITY = np.array([0.5, 0.35, 0.4])  # per flow, on log(monthly instalment / bill)
INSTALMENT_MONTHS = 36.0
AFFORDABILITY_PIVOT = np.log(0.12)  # instalment at 12% of the bill is neutral
ATC_DISCOUNT = 0.015  # per % off
ATC_RATING = 0.5  # per star above 4
ATC_TASTE = 0.2

# Purchase-given-add-to-cart logit.
PURCHASE_BASE = np.array([-1.9, -1.7, -2.2])  # NSE: credit checks and account set-up
PURCHASE_TENURE = 0.4  # per log(1 + years)
PURCHASE_DISCOUNT = 0.015
PURCHASE_TASTE = 0.15
PURCHASE_CREDIT = 0.2  # hidden credit score (prospects) / payment history (customers)
PURCHASE_CHANNEL = np.array([0.0, 0.1, 0.4])  # a store associate closes the sale
PURCHASE_LINES = 0.1  # per line on the account (multi-line accounts are established)

CLICK_NOISE = 0.1  # per-impression noise inside each true probability (logit scale); small, because
# only the oracle can know it: a larger noise would widen the gap between the oracle and any model
ATC_NOISE = 0.2
PURCHASE_NOISE = 0.2

# Search query text.
# Modifiers come from the flow (why the customer is here), the intended category (what kind of
# thing they want) or neither; they carry intent the category words alone do not.
QUERY_FLOW_MODIFIERS = {
    "AAL": ("for kids", "add a line", "family", "for my son", "second line"),
    "EUP": ("upgrade", "trade in", "pro", "best"),
    "NSE": ("switch", "free", "deals", "bring my number", "new customer"),
}
QUERY_CATEGORY_MODIFIERS: tuple[tuple[str, ...], ...] = (
    ("best", "latest", "pro", "1tb"),
    ("under 500", "good", "5g"),
    ("cheap", "under 200", "prepaid"),
    ("kids", "cellular", "12 inch"),
    ("kids", "lte", "fitness"),
    ("noise cancelling", "bluetooth", "wireless"),
    ("clear", "rugged", "magsafe"),
    ("fast", "usb c", "car"),
)
QUERY_ANY_MODIFIERS = ("5g", "unlocked", "new", "black", "deals")
QUERY_MODIFIER_SOURCE_P = (0.4, 0.35, 0.25)  # flow, category, any
QUERY_NOISE_WORDS = ("buy", "near me", "online", "price", "2026", "sale", "review")
QUERY_MODIFIER_P = 0.45
QUERY_NOISE_P = 0.2
QUERY_TYPO_P = 0.05
QUERY_DROPS_CATEGORY_P = 0.3  # with a brand intent, the brand alone ("iphone") is often enough


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class Windows(NamedTuple):
    """Train and test windows, each ``(start, end)`` with the end exclusive, as UTC timestamps.

    Reads as ``w.train`` or ``w["train"]``.
    """

    train: tuple[pd.Timestamp, pd.Timestamp]
    test: tuple[pd.Timestamp, pd.Timestamp]
    monitor: tuple[pd.Timestamp, pd.Timestamp]  # production weeks after the test window (may be empty)

    def __getitem__(self, key):  # type: ignore[override]
        return getattr(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


@dataclass(frozen=True)
class SimulationConfig:
    n_impressions: int = 1_000_000
    n_customers: int | None = None  # default: n_impressions // 20, at least 200
    n_items: int = 300
    start: str = "2026-06-01"  # UTC
    train_weeks: int = 13
    test_weeks: int = 1  # the test window follows the training window
    embedding_dim: int = 32  # image embedding length
    n_pages: int = 24
    seed: int = 0
    # Weeks after the test window, as the ranking service would see them in production: what the
    # monitoring pipeline watches. The last `drift_weeks` of them carry the `drift` scenarios.
    monitor_weeks: int = 0
    drift: tuple[str, ...] = ()
    drift_weeks: int = 1
    # Tasks per surface too (SURFACES): the impressions gain a `surface` column, the data folder a
    # contract whose tasks are flow x surface x use case (72), each surface converting at its own rate.
    pages: bool = False
    # With pages: the checkout's two surfaces too (CHECKOUT_SURFACES): 8 surfaces, 96 tasks.
    checkout_pages: bool = False

    def __post_init__(self) -> None:
        if self.n_impressions < 1:
            raise ValueError("n_impressions must be positive")
        if self.n_items < 2 * N_CATEGORIES:
            raise ValueError(f"n_items must be at least {2 * N_CATEGORIES} (two per category)")
        if self.n_pages < N_STRUCTURED_PAGES:
            raise ValueError(f"n_pages must be at least {N_STRUCTURED_PAGES} (the storefront's pages)")
        if self.train_weeks < 1 or self.test_weeks < 0 or self.embedding_dim < 1:
            raise ValueError("train_weeks >= 1, test_weeks >= 0 and embedding_dim >= 1 are required")
        if self.n_customers is not None and self.n_customers < 2:
            raise ValueError("n_customers must be at least 2")
        unknown = set(self.drift) - set(DRIFTS)
        if unknown:
            raise ValueError(f"drift: unknown scenario(s) {sorted(unknown)}; known: {', '.join(DRIFTS)}")
        if self.drift and not 1 <= self.drift_weeks <= self.monitor_weeks:
            raise ValueError("drift needs monitor weeks to happen in: 1 <= drift_weeks <= monitor_weeks")
        if self.checkout_pages and not self.pages:
            raise ValueError("checkout_pages adds two surfaces to the storefront's pages: it needs pages")

    @property
    def surfaces(self) -> tuple[str, ...]:
        """The surfaces impressions are shown on (none without pages)."""
        return (SURFACES + CHECKOUT_SURFACES if self.checkout_pages else SURFACES) if self.pages else ()

    @property
    def customer_count(self) -> int:
        """The number of customers, the default resolved."""
        return self.n_customers if self.n_customers is not None else max(200, self.n_impressions // 20)

    @property
    def windows(self) -> Windows:
        start = pd.Timestamp(self.start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        train_end = start + pd.Timedelta(weeks=self.train_weeks)
        test_end = train_end + pd.Timedelta(weeks=self.test_weeks)
        return Windows(train=(start, train_end), test=(train_end, test_end),
                       monitor=(test_end, test_end + pd.Timedelta(weeks=self.monitor_weeks)))

    @property
    def end(self) -> pd.Timestamp:
        """End (exclusive) of the simulated time."""
        return self.windows.monitor[1]

    @property
    def drift_start(self) -> pd.Timestamp | None:
        """When the drift scenarios begin (None without drift)."""
        return self.end - pd.Timedelta(weeks=self.drift_weeks) if self.drift else None


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sample_rows(rng: np.random.Generator, weights: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each row r, draw a column index with probability proportional to ``weights[group[r]]``.

    One vectorised inverse-CDF draw for all rows: each group's CDF lies in [0, 1], so shifting
    group g by g makes all CDFs one increasing array that a single searchsorted can read.
    Columns with zero weight are never drawn (side="right" skips flat steps).
    """
    n_groups, n_cols = weights.shape
    cdf = np.cumsum(weights, axis=1)
    total = cdf[:, -1:]
    if np.any(total <= 0):
        raise ValueError("every group needs some positive weight")
    flat = (cdf / total + np.arange(n_groups)[:, None]).ravel()
    u = rng.random(len(group)) * (1 - 1e-12)
    idx = np.searchsorted(flat, group + u, side="right") - group * n_cols
    return np.minimum(idx, n_cols - 1)


def _gumbel_argmax(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """Row-wise draw from softmax(logits) (entries of -inf are never drawn)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _random_flow_matrices(rng: np.random.Generator) -> np.ndarray:
    """A_f = I + symmetric perturbation, one per flow: shared structure, flow-specific weights."""
    noise = rng.normal(0, FLOW_PERTURBATION / np.sqrt(LATENT_DIM), (len(FLOWS), LATENT_DIM, LATENT_DIM))
    return np.eye(LATENT_DIM) + (noise + noise.transpose(0, 2, 1)) / np.sqrt(2)


# --------------------------------------------------------------------------------------------
# World: items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Items:
    category: np.ndarray
    brand: np.ndarray
    os: np.ndarray
    price: np.ndarray
    storage: np.ndarray
    rating: np.ndarray
    discount: np.ndarray
    v: np.ndarray  # (n_items, LATENT_DIM)
    popularity: np.ndarray
    rel_price: np.ndarray  # log price minus its category's median log price

    @property
    def n(self) -> int:
        return len(self.category)


def _category_counts(n_items: int) -> np.ndarray:
    """Items per category: proportional to CATEGORY_SHARE, at least two each, summing to n_items."""
    raw = CATEGORY_SHARE / CATEGORY_SHARE.sum() * (n_items - 2 * N_CATEGORIES)
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw)[: n_items - 2 * N_CATEGORIES - counts.sum()]] += 1
    return counts + 2


def _storage(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    storage = np.zeros(len(category))
    for k in PHONES:
        rows = np.flatnonzero(category == k)
        storage[rows] = rng.choice(PHONE_STORAGE_GB, size=len(rows), p=PHONE_STORAGE_P[k])
    rows = np.flatnonzero(category == TABLET)
    storage[rows] = rng.choice(TABLET_STORAGE_GB, size=len(rows), p=TABLET_STORAGE_P)
    rows = np.flatnonzero(category == WATCH)
    storage[rows] = rng.choice(WATCH_STORAGE_GB, size=len(rows), p=WATCH_STORAGE_P)
    return storage


def _make_items(rng: np.random.Generator, n_items: int) -> _Items:
    # Shuffled so an item id says nothing about its category by itself.
    category = rng.permutation(np.repeat(np.arange(N_CATEGORIES), _category_counts(n_items)))
    brand = _sample_rows(rng, BRAND_CATEGORY_WEIGHT.T, category)
    os_code = np.where(np.isin(category, OS_CATEGORIES), BRAND_OS[brand], OS_NONE)
    storage = _storage(rng, category)
    # Storage adds to the price of devices; tiers add noise within a category.
    storage_factor = np.where(storage > 0, 1 + 0.12 * np.log2(np.maximum(storage, 1) / 128), 1.0)
    raw_price = CATEGORY_BASE_PRICE[category] * BRAND_PREMIUM[brand] * storage_factor * rng.lognormal(0, 0.18, n_items)
    price = np.maximum(np.round(raw_price) - 0.01, 4.99)
    quality = rng.normal(0, 1, n_items)  # hidden item quality: drives rating and popularity
    rating = np.clip(np.round(4.1 + 0.3 * quality + rng.normal(0, 0.2, n_items), 1), 1.0, 5.0)
    on_sale = rng.random(n_items) < DISCOUNT_SHARE
    discount = np.where(on_sale, rng.choice(DISCOUNT_LEVELS, size=n_items, p=DISCOUNT_LEVEL_P), 0.0)

    log_price = np.log(price)
    median = np.array([np.median(log_price[category == k]) for k in range(N_CATEGORIES)])
    rel_price = log_price - median[category]

    # Latent vector: category and brand centres plus noise, with the first dims carrying attributes
    # customers can be observed to care about (OS, premium, youth).
    category_centre = rng.normal(0, 0.7, (N_CATEGORIES, LATENT_DIM))
    brand_centre = rng.normal(0, 0.5, (N_BRANDS, LATENT_DIM))
    v = category_centre[category] + brand_centre[brand] + rng.normal(0, 0.5, (n_items, LATENT_DIM))
    v[:, OS_DIM] = np.select([os_code == OS_IOS, os_code == OS_ANDROID], [1.2, -1.2], 0.0) + rng.normal(0, 0.2, n_items)
    premium = rel_price + np.log(BRAND_PREMIUM[brand])
    v[:, PREMIUM_DIM] = (premium - premium.mean()) / max(premium.std(), 1e-9)
    v[:, YOUTH_DIM] = CATEGORY_YOUTH[category] + rng.normal(0, 0.4, n_items)
    popularity = 0.6 * quality + rng.normal(0, 0.4, n_items)
    popularity -= popularity.mean()
    return _Items(category, brand, os_code, price, storage, rating, discount, v, popularity, rel_price)


def _image_embeddings(rng: np.random.Generator, items: _Items, dim: int) -> np.ndarray:
    """A CLIP-like image view of the item: a random linear map of its attributes, plus noise.

    (The description's text vector is not simulated: the feature pipeline encodes the generated
    description with a real sentence encoder.)
    """
    features = np.hstack([items.v, np.eye(N_CATEGORIES)[items.category], np.eye(N_BRANDS)[items.brand]])
    proj = rng.normal(0, 1 / np.sqrt(features.shape[1]), (features.shape[1], dim))
    emb = features @ proj + rng.normal(0, 0.15, (items.n, dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _descriptions(rng: np.random.Generator, items: _Items) -> list[str]:
    """Human-readable catalogue text generated from the attributes (a few hundred rows: a loop is fine)."""
    color = rng.integers(0, len(COLORS), items.n)
    generation = rng.integers(5, 18, items.n)
    screen = np.round(rng.uniform(6.0, 6.9, items.n), 1)
    tablet_screen = np.round(rng.uniform(8.3, 12.9, items.n), 1)
    camera = rng.choice([12, 48, 50, 64, 108, 200], size=items.n)
    watch_mm = rng.choice([40, 41, 44, 45, 46], size=items.n)
    battery_h = rng.integers(6, 40, items.n)
    drop_ft = rng.choice([4, 6, 10, 15], size=items.n)
    watts = rng.choice([15, 20, 25, 30, 45, 65], size=items.n)
    compatible = rng.choice(["iPhone", "Galaxy", "Pixel", "most phones"], size=items.n)
    texts = []
    for i in range(items.n):
        b, k = int(items.brand[i]), int(items.category[i])
        name = f"{BRANDS[b].name} {SERIES.get((b, k), CATEGORY_PHRASE[k].split()[-1].title())} {generation[i]}"
        storage = f"{int(items.storage[i])} GB"
        if k in PHONES:
            detail = f"{storage}, {screen[i]}-inch display, {camera[i]} MP camera, 5G"
        elif k == TABLET:
            detail = f"{storage}, {tablet_screen[i]}-inch display, Wi-Fi + Cellular"
        elif k == WATCH:
            detail = f"{watch_mm[i]} mm case, {storage}, GPS + LTE, heart-rate and sleep tracking"
        elif k == AUDIO:
            detail = f"active noise cancelling, {battery_h[i]}-hour battery"
        elif k == CASE:
            detail = f"for {compatible[i]}, {drop_ft[i]} ft drop protection"
        else:
            detail = f"{watts[i]} W USB-C power delivery, for {compatible[i]}"
        text = f"{name} {CATEGORY_PHRASE[k]}, {detail}, {COLORS[color[i]]}. Rated {items.rating[i]:.1f}/5."
        if items.discount[i] > 0:
            text += f" Now {int(items.discount[i])}% off."
        texts.append(text)
    return texts


def _launch(rng: np.random.Generator, items: _Items) -> tuple[_Items, np.ndarray]:
    """The catalogue with new flagship phones appended: (items, each new item's predecessor).
    A successor keeps its predecessor's brand, line and storage, with a nearby taste vector, no
    promotion, a higher price and launch hype."""
    flagships = np.flatnonzero(items.category == FLAGSHIP)
    pred = flagships[np.argsort(-items.popularity[flagships], kind="stable")[:LAUNCH_ITEMS]]
    k = len(pred)
    new = dataclasses.replace(
        _Items(*(getattr(items, f.name)[pred] for f in dataclasses.fields(_Items))),
        price=np.round(items.price[pred] * LAUNCH_PRICE_FACTOR) - 0.01,
        rating=np.clip(np.round(items.rating[pred] + rng.normal(0, 0.1, k), 1), 1.0, 5.0),
        discount=np.zeros(k), v=items.v[pred] + rng.normal(0, 0.2, (k, LATENT_DIM)),
        popularity=items.popularity[pred] + LAUNCH_HYPE, rel_price=items.rel_price[pred] + np.log(LAUNCH_PRICE_FACTOR))
    joined = _Items(*(np.concatenate([getattr(items, f.name), getattr(new, f.name)]) for f in dataclasses.fields(_Items)))
    return joined, pred


def _launched_table(rng: np.random.Generator, table: pd.DataFrame, items: _Items, pred: np.ndarray,
                    config: SimulationConfig) -> pd.DataFrame:
    """Catalogue rows of the launched items, stamped at the launch: images like their predecessors'
    (a new model of the same line), descriptions from their own attributes."""
    n_old, k = len(table), len(pred)
    new = _Items(*(getattr(items, f.name)[n_old:] for f in dataclasses.fields(_Items)))
    image = np.stack(table["image_embedding"].to_numpy()[pred]) + rng.normal(0, 0.05, (k, config.embedding_dim))
    rows = pd.DataFrame({
        "item_id": np.arange(n_old, n_old + k, dtype=np.int64), "updated_at": config.drift_start,
        "category": new.category.astype(np.int64), "brand": new.brand.astype(np.int64), "os": new.os.astype(np.int64),
        "price": new.price.astype(np.float32), "storage_gb": new.storage.astype(np.float32),
        "rating": new.rating.astype(np.float32), "discount_pct": new.discount.astype(np.float32),
        "description": pd.Series(_descriptions(rng, new), dtype=object),
        "image_embedding": list((image / np.linalg.norm(image, axis=1, keepdims=True)).astype(np.float32)),
    })
    return pd.concat([table, rows[ITEMS.names()]], ignore_index=True)


def _price_change(items: _Items) -> tuple[_Items, np.ndarray]:
    """The catalogue after a phone price rise: (items, which items changed). Customers judge prices
    against what they knew (rel_price keeps the old category medians), so the rise reads as dearer."""
    changed = np.isin(items.category, PHONES)
    factor = np.where(changed, PRICE_CHANGE_FACTOR, 1.0)
    after = dataclasses.replace(items, price=np.round(items.price * factor, 2),
                                discount=np.where(changed, 0.0, items.discount),
                                rel_price=items.rel_price + np.log(factor))
    return after, changed


def _items_table(rng: np.random.Generator, items: _Items, config: SimulationConfig) -> pd.DataFrame:
    image = _image_embeddings(rng, items, config.embedding_dim)
    start = config.windows.train[0]
    updated = start - pd.to_timedelta(rng.integers(1, 90 * 86_400, items.n), unit="s")
    table = pd.DataFrame({
        "item_id": np.arange(items.n, dtype=np.int64),
        "updated_at": updated.floor("s"),
        "category": items.category.astype(np.int64),
        "brand": items.brand.astype(np.int64),
        "os": items.os.astype(np.int64),
        "price": items.price.astype(np.float32),
        "storage_gb": items.storage.astype(np.float32),
        "rating": items.rating.astype(np.float32),
        "discount_pct": items.discount.astype(np.float32),
        "description": pd.Series(_descriptions(rng, items), dtype=object),
        "image_embedding": list(image),
    })[ITEMS.names()]
    if "price_change" in config.drift:  # a second snapshot of the changed items, stamped at the change
        after, changed = _price_change(items)
        snapshot = table[changed].assign(updated_at=config.drift_start, price=after.price[changed].astype(np.float32),
                                          discount_pct=after.discount[changed].astype(np.float32))
        table = pd.concat([table, snapshot], ignore_index=True)
    return table


# --------------------------------------------------------------------------------------------
# World: customers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Customers:
    prospect: np.ndarray  # bool
    u: np.ndarray  # (n, LATENT_DIM) taste
    device_os: np.ndarray
    tenure: np.ndarray
    bill: np.ndarray
    lines: np.ndarray
    device_age: np.ndarray
    budget: np.ndarray  # monthly budget: the bill, or a hidden one for prospects
    credit: np.ndarray  # hidden credit score / payment history
    activity: np.ndarray  # relative impression volume
    eup_propensity: np.ndarray  # P(EUP | not prospect)
    channel: np.ndarray  # preferred channel

    @property
    def n(self) -> int:
        return len(self.prospect)


def _band(latent: np.ndarray, n_bands: int) -> np.ndarray:
    """Cut a latent into n equally populated, ordered bands (codes 0..n-1)."""
    edges = np.quantile(latent, np.linspace(0, 1, n_bands + 1)[1:-1])
    return np.searchsorted(edges, latent)


def _make_customers(rng: np.random.Generator, n: int) -> tuple[_Customers, dict[str, np.ndarray]]:
    prospect = rng.random(n) < PROSPECT_SHARE
    existing = ~prospect
    u = rng.normal(0, 1, (n, LATENT_DIM))
    # Observed profile generated from taste, with noise (context is partly informative).
    region = rng.choice(N_REGIONS, size=n, p=REGION_WEIGHTS)
    region_shift = np.linspace(-REGION_TASTE_SHIFT, REGION_TASTE_SHIFT, N_REGIONS)[rng.permutation(N_REGIONS)]
    u[:, REGION_DIM] = REGION_TASTE_LOADING * region_shift[region] + np.sqrt(1 - REGION_TASTE_LOADING ** 2) * u[:, REGION_DIM]
    device_os = np.where(u[:, OS_DIM] + rng.normal(0, PROFILE_NOISE["device_os"], n) > 0.1, OS_IOS, OS_ANDROID)
    age_band = _band(-u[:, YOUTH_DIM] + rng.normal(0, PROFILE_NOISE["age_band"], n), N_AGE_BANDS)

    lines = np.where(existing, np.clip(1 + rng.poisson(0.9, n), 1, 8), 0)
    plan = np.where(existing, 1 + _band(u[:, PREMIUM_DIM] + rng.normal(0, PROFILE_NOISE["plan_type"], n), N_PLAN_TYPES), 0)
    # Prospects have a budget from the same law, but no bill to observe it by.
    budget = 38.0 * np.maximum(lines, 1) ** 0.8 * np.exp(0.22 * u[:, PREMIUM_DIM] + 0.1 * plan + rng.normal(0, 0.12, n))
    bill = np.where(existing, np.round(budget, 2), 0.0)
    tenure = np.where(existing, np.clip(np.round(rng.exponential(48, n)), 1, 240), 0.0)
    device_age = np.where(existing, np.clip(np.round(rng.gamma(2.0, 11.0, n)), 0, 84), 0.0)
    credit = rng.normal(0, 1, n) + np.where(existing, 0.1 * np.log1p(tenure / 12), 0.0)

    activity = rng.lognormal(0, 0.8, n) * np.where(prospect, 0.8, 1.0)
    eup_propensity = _sigmoid(-0.2 + 0.06 * (device_age - 20) + rng.normal(0, 0.5, n))
    channel = np.where(
        prospect,
        rng.choice(3, size=n, p=CHANNEL_P_PROSPECT),
        rng.choice(3, size=n, p=CHANNEL_P_EXISTING),
    )
    customers = _Customers(prospect, u, device_os, tenure, bill, lines.astype(float), device_age, budget,
                           credit, activity, eup_propensity, channel)
    observed = {"region": region, "plan_type": plan, "device_os": device_os, "age_band": age_band}
    return customers, observed


def _customers_table(rng: np.random.Generator, c: _Customers, observed: dict[str, np.ndarray],
                     config: SimulationConfig) -> pd.DataFrame:
    # Profiles are snapshotted before the window opens, so a point-in-time join finds them for
    # every impression.
    start = config.windows.train[0]
    updated = start - pd.to_timedelta(rng.integers(1, 30 * 86_400, c.n), unit="s")
    return pd.DataFrame({
        "customer_id": np.arange(c.n, dtype=np.int64),
        "updated_at": updated.floor("s"),
        **{k: v.astype(np.int64) for k, v in observed.items()},
        "tenure_months": c.tenure.astype(np.float32),
        "monthly_bill": c.bill.astype(np.float32),
        "lines_on_account": c.lines.astype(np.float32),
        "device_age_months": c.device_age.astype(np.float32),
    })[CUSTOMERS.names()]


# --------------------------------------------------------------------------------------------
# Histories: what each customer viewed, and where
# --------------------------------------------------------------------------------------------


def _make_histories(rng: np.random.Generator, c: _Customers, items: _Items, n_pages: int,
                    chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, a time-ordered list of MAX_SEQ_LEN + HISTORY_GROWTH views and their pages.

    Views follow taste and popularity, so the sequence reveals the (mostly hidden) taste.
    """
    length = MAX_SEQ_LEN + HISTORY_GROWTH
    viewed = np.empty((c.n, length), dtype=np.int64)
    for lo in range(0, c.n, chunk):  # chunks over customers bound memory (n x n_items weights)
        u = c.u[lo:lo + chunk]
        logits = u @ items.v.T / np.sqrt(LATENT_DIM) + items.popularity
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        group = np.repeat(np.arange(len(u)), length)
        viewed[lo:lo + chunk] = _sample_rows(rng, weights, group).reshape(len(u), length)
    category = items.category[viewed]
    # Most views are on the product page; some on the category listing, search results or deals;
    # a few on generic content pages (when the site has more pages than the storefront's own).
    kind = rng.choice(4, size=viewed.shape, p=[0.6, 0.25, 0.1, 0.05])
    pages = np.select(
        [kind == 0, kind == 1, kind == 2],
        [DETAIL_PAGE + category, BROWSE_PAGE + category, SEARCH_RESULTS],
        rng.choice(np.array([HOME, DEALS, CART, ACCOUNT]), size=viewed.shape),
    )
    if n_pages > N_STRUCTURED_PAGES:
        extra = rng.random(viewed.shape) < 0.05
        pages = np.where(extra, rng.integers(N_STRUCTURED_PAGES, n_pages, viewed.shape), pages)
    return viewed, pages.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Impressions
# --------------------------------------------------------------------------------------------


def _timestamps_us(rng: np.random.Generator, n: int, config: SimulationConfig) -> np.ndarray:
    """Sorted event times in microseconds since the epoch: uniform days, diurnal hours."""
    start, end = config.windows.train[0], config.end
    n_days = (end - start).days
    day = rng.integers(0, n_days, n)
    hour = rng.choice(24, size=n, p=DIURNAL_WEIGHTS / DIURNAL_WEIGHTS.sum())
    within = rng.integers(0, 3_600_000_000, n)
    us = start.value // 1000 + day * 86_400_000_000 + hour * 3_600_000_000 + within
    return np.sort(us)


def _search_queries(rng: np.random.Generator, flow: np.ndarray, intent: np.ndarray,
                    brand_intent: np.ndarray) -> np.ndarray:
    """Query text revealing the intent: category words and/or brand, modifiers, noise, typos."""
    n = len(flow)
    # Per-row choices drawn vectorised; the loop below only joins strings.
    word_pick = rng.integers(0, 1 << 30, n)
    drop_category = (brand_intent >= 0) & (rng.random(n) < QUERY_DROPS_CATEGORY_P)
    has_modifier = rng.random(n) < QUERY_MODIFIER_P
    modifier_source = rng.choice(3, size=n, p=QUERY_MODIFIER_SOURCE_P)
    modifier_pick = rng.integers(0, 1 << 30, n)
    has_noise = rng.random(n) < QUERY_NOISE_P
    noise_pick = rng.integers(0, len(QUERY_NOISE_WORDS), n)
    typo = rng.random(n) < QUERY_TYPO_P
    typo_pos = rng.integers(0, 1 << 30, n)
    queries = np.empty(n, dtype=object)
    for r in range(n):
        k, b = int(intent[r]), int(brand_intent[r])
        parts = []
        brand_word = BRANDS[b].query.get(k, BRANDS[b].name.lower()) if b >= 0 else ""
        words = CATEGORY_QUERY_WORDS[k]
        category_words = words[word_pick[r] % len(words)]
        if brand_word:
            parts.append(brand_word)
        # "apple watch" needs no "watch" after it; brand-only queries are common anyway.
        if not drop_category[r] and category_words.split()[-1] not in brand_word:
            parts.append(category_words)
        if has_modifier[r]:
            pool = (QUERY_FLOW_MODIFIERS[FLOWS[flow[r]]], QUERY_CATEGORY_MODIFIERS[k],
                    QUERY_ANY_MODIFIERS)[modifier_source[r]]
            parts.insert(0 if modifier_pick[r] % 2 else len(parts), pool[(modifier_pick[r] >> 1) % len(pool)])
        if has_noise[r]:
            parts.append(QUERY_NOISE_WORDS[noise_pick[r]])
        text = " ".join(parts)
        if typo[r] and len(text) > 3:  # a dropped or doubled character
            p = 1 + (typo_pos[r] >> 1) % (len(text) - 2)
            text = text[:p] + text[p + 1:] if typo_pos[r] % 2 else text[:p] + text[p] + text[p:]
        queries[r] = text
    return queries


class _Rows(NamedTuple):
    customer: np.ndarray
    flow: np.ndarray
    channel: np.ndarray
    position: np.ndarray
    seq_len: np.ndarray
    seq_end: np.ndarray


def _make_rows(rng: np.random.Generator, c: _Customers, ts_us: np.ndarray, config: SimulationConfig,
               drift_rng: np.random.Generator) -> _Rows:
    n = len(ts_us)
    customer = rng.choice(c.n, size=n, p=c.activity / c.activity.sum())
    if "flow_shift" in config.drift:
        customer = _flow_shift(drift_rng, c, ts_us, customer, config)
    eup = rng.random(n) < c.eup_propensity[customer]
    flow = np.where(c.prospect[customer], FLOWS.index("NSE"), np.where(eup, FLOWS.index("EUP"), FLOWS.index("AAL")))
    channel = np.where(rng.random(n) < CHANNEL_LOYALTY, c.channel[customer],
                       rng.choice(3, size=n, p=CHANNEL_P_EXISTING))
    position = rng.integers(0, 6, n)
    # The history grows over the window: an impression sees the views made before its time.
    start, end = config.windows.train[0], config.end
    t = (ts_us - start.value // 1000) / ((end - start).value // 1000)
    seq_end = MAX_SEQ_LEN + np.floor(HISTORY_GROWTH * t).astype(np.int64)
    max_len = np.where(c.prospect[customer], PROSPECT_MAX_SEQ_LEN, MAX_SEQ_LEN)
    seq_len = rng.integers(0, max_len + 1)
    return _Rows(customer, flow.astype(np.int64), channel, position, seq_len, seq_end)


def _flow_shift(rng: np.random.Generator, c: _Customers, ts_us: np.ndarray, customer: np.ndarray,
                config: SimulationConfig) -> np.ndarray:
    """A new-customer promotion from `drift_start`: prospects visit FLOW_SHIFT_PROSPECT_BOOST times as
    often, so NSE traffic (and its profile: no tenure, bill or lines) takes a larger share. Drawn
    from the drift stream: rows before the drift are those of the same simulation without it."""
    drifted = ts_us >= config.drift_start.value // 1000
    activity = c.activity * np.where(c.prospect, FLOW_SHIFT_PROSPECT_BOOST, 1.0)
    customer = customer.copy()
    customer[drifted] = rng.choice(c.n, size=int(drifted.sum()), p=activity / activity.sum())
    return customer


def _sequences(rows: _Rows, viewed: np.ndarray, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, items, pages) of the flattened per-row sequences: the last seq_len views."""
    offsets = np.zeros(len(rows.customer) + 1, dtype=np.int64)
    np.cumsum(rows.seq_len, out=offsets[1:])
    row = np.repeat(np.arange(len(rows.customer)), rows.seq_len)
    step = np.arange(offsets[-1]) - offsets[row]  # 0..len-1 within each row
    col = rows.seq_end[row] - rows.seq_len[row] + step
    who = rows.customer[row]
    return offsets, viewed[who, col], pages[who, col]


def _intents(rng: np.random.Generator, rows: _Rows, c: _Customers, items: _Items,
             seq: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """What the customer came for: flow affinity (sharpened), taste toward category centres, and
    the categories of the recently viewed items (people come back for what they were looking at)."""
    centre = np.stack([items.v[items.category == k].mean(axis=0) for k in range(N_CATEGORIES)])
    taste = c.u @ centre.T / np.sqrt(LATENT_DIM)  # (n_customers, K)
    offsets, seq_items, _ = seq
    row = np.repeat(np.arange(len(rows.flow)), rows.seq_len)
    recent = np.zeros((len(rows.flow), N_CATEGORIES))
    np.add.at(recent, (row, items.category[seq_items]), 1.0)
    recent /= np.maximum(rows.seq_len, 1)[:, None]  # share of the recent views per category
    logits = (INTENT_AFFINITY_SCALE * FLOW_CATEGORY_AFFINITY[rows.flow] + INTENT_TASTE_SCALE * taste[rows.customer]
              + INTENT_HISTORY_SCALE * recent)
    return _gumbel_argmax(rng, logits)


def _brand_intents(rng: np.random.Generator, rows: _Rows, intent: np.ndarray, c: _Customers,
                   items: _Items, search: np.ndarray) -> np.ndarray:
    """A brand named in the search (-1: none), among brands that make the category, OS-loyal."""
    has_items = np.zeros((N_CATEGORIES, N_BRANDS), dtype=bool)
    has_items[items.category, items.brand] = True
    os_sign = np.select([BRAND_OS == OS_IOS, BRAND_OS == OS_ANDROID], [1.0, -1.0], 0.0)
    loyalty = BRAND_INTENT_OS_LOYALTY * np.outer(c.u[rows.customer, OS_DIM], os_sign)
    logits = np.log(BRAND_CATEGORY_WEIGHT.T[intent] + 1e-9) + loyalty
    logits = np.where(has_items[intent], logits, -np.inf)
    brand = _gumbel_argmax(rng, logits)
    named = search & (rng.random(len(intent)) < BRAND_INTENT_SHARE)
    return np.where(named, brand, -1)


class _Shown(NamedTuple):
    item: np.ndarray
    page: np.ndarray
    kind: np.ndarray  # 0 search, 1 browse, 2 other (intent hidden)
    surface: np.ndarray  # index into SURFACES (+ CHECKOUT_SURFACES)
    phone: np.ndarray | None = None  # the phone in the cart on interstitial rows (item index; -1 elsewhere)


SEARCH_KIND, BROWSE_KIND, HIDDEN_KIND = range(3)


def _logging_policy(rng: np.random.Generator, rows: _Rows, intent: np.ndarray, brand_intent: np.ndarray,
                    search: np.ndarray, items: _Items, seq: tuple[np.ndarray, np.ndarray, np.ndarray],
                    launched: np.ndarray | None = None, after_launch: np.ndarray | None = None,
                    page_type: np.ndarray | None = None) -> _Shown:
    """Pick the page type, then the item shown: popularity x flow affinity, steered by the page.
    `launched` (per item) items are shown only on rows `after_launch`. `page_type` (index into
    PAGE_TYPE_P, -1 on search rows): given, rather than drawn (a request's candidates share a page)."""
    n = len(rows.flow)
    page_types = list(PAGE_TYPE_P)
    if page_type is None:
        page_type = np.where(search, -1, rng.choice(len(page_types), size=n, p=list(PAGE_TYPE_P.values())))
    is_type = {name: page_type == i for i, name in enumerate(page_types)}

    # Weight matrix, one row per group the policy samples from: flows, categories, (category,
    # brand) pairs and the deals shelf. Each impression then picks its group.
    base = np.exp(POLICY_POPULARITY * items.popularity)
    by_flow = base * np.exp(FLOW_CATEGORY_AFFINITY[:, items.category])
    by_category = base * (items.category == np.arange(N_CATEGORIES)[:, None])
    pair = items.category * N_BRANDS + items.brand
    by_pair = base * (pair == np.arange(N_CATEGORIES * N_BRANDS)[:, None])
    empty = by_pair.sum(axis=1) == 0  # brands absent from a category: never drawn, kept valid
    by_pair[empty] = by_category.repeat(N_BRANDS, axis=0)[empty]
    deals = (base * (items.discount > 0))[None] if (items.discount > 0).any() else base[None]
    weights = np.vstack([by_flow, by_category, by_pair, deals])
    g_flow, g_cat, g_pair, g_deals = 0, len(FLOWS), len(FLOWS) + N_CATEGORIES, len(weights) - 1

    group = g_flow + rows.flow
    u = rng.random(n)
    steer_search = search & (u < SEARCH_SHOWS_INTENT)
    group = np.where(steer_search, g_cat + intent, group)
    with_brand = steer_search & (brand_intent >= 0) & (rng.random(n) < SEARCH_SHOWS_BRAND)
    group = np.where(with_brand, g_pair + intent * N_BRANDS + np.maximum(brand_intent, 0), group)
    group = np.where(is_type["browse"] & (u < BROWSE_SHOWS_INTENT), g_cat + intent, group)
    group = np.where(is_type["deals"], g_deals, group)
    if launched is not None:  # two catalogues: before the launch without the new items, after it with them
        weights = np.vstack([np.where(launched, 0.0, weights), weights])
        group = np.where(after_launch, group + len(weights) // 2, group)
    item = _sample_rows(rng, weights, group)

    # Home-page re-targeting: show one of the recently viewed items.
    offsets, seq_items, _ = seq
    retarget = is_type["home"] & (rows.seq_len > 0) & (rng.random(n) < RETARGET_SHARE)
    pick = offsets[:-1] + np.floor(rng.random(n) * rows.seq_len).astype(np.int64)
    if len(seq_items):
        item = np.where(retarget, seq_items[np.minimum(pick, len(seq_items) - 1)], item)

    # Cross-sell on product pages: the page is another category's detail page.
    other = (items.category[item] + rng.integers(1, N_CATEGORIES, n)) % N_CATEGORIES
    page = np.select(
        [search, is_type["browse"], is_type["landing"], is_type["deals"], is_type["detail"]],
        [SEARCH_RESULTS, BROWSE_PAGE + intent, FLOW_LANDING_PAGE + rows.flow, DEALS, DETAIL_PAGE + other],
        HOME,
    )
    kind = np.select([search, is_type["browse"]], [SEARCH_KIND, BROWSE_KIND], HIDDEN_KIND)
    return _Shown(item.astype(np.int64), page.astype(np.int64), kind, page_type + 1)  # search (-1) is surface 0


def _checkout_pages(rng: np.random.Generator, shown: _Shown, rows: _Rows, items: _Items,
                    seq: tuple[np.ndarray, np.ndarray, np.ndarray]) -> _Shown:
    """Landing- and home-page rows moved to the checkout's surfaces (CHECKOUT_SURFACES): the
    interstitial's accessory, the cart's viewed item or accessory, both on the cart's page."""
    n = len(shown.item)
    offsets, seq_items, _ = seq
    phone = _last_viewed_phone(items, offsets, seq_items)
    u = rng.random(n)
    eligible = np.isin(shown.surface, (SURFACES.index("landing"), SURFACES.index("home")))
    interstitial = eligible & (phone >= 0) & (u < CHECKOUT_SHARE["interstitial"])
    cart = eligible & ~interstitial & (rng.random(n) < CHECKOUT_SHARE["cart"])
    base = np.exp(POLICY_POPULARITY * items.popularity)
    accessory = _sample_rows(rng, (base * np.isin(items.category, GOES_WITH_A_PHONE))[None], np.zeros(n, np.int64))
    pick = offsets[:-1] + np.floor(rng.random(n) * rows.seq_len).astype(np.int64)
    viewed = seq_items[np.minimum(pick, len(seq_items) - 1)] if len(seq_items) else accessory
    retarget = (rows.seq_len > 0) & (rng.random(n) < CART_SHOWS_VIEWED)
    item = np.where(interstitial, accessory, np.where(cart, np.where(retarget, viewed, accessory), shown.item))
    moved = interstitial | cart
    surface = np.select([interstitial, cart], [len(SURFACES), len(SURFACES) + 1], shown.surface)
    return _Shown(item.astype(np.int64), np.where(moved, CART, shown.page), np.where(moved, HIDDEN_KIND, shown.kind),
                  surface, np.where(interstitial, phone, -1))


def _last_viewed_phone(items: _Items, offsets: np.ndarray, seq_items: np.ndarray) -> np.ndarray:
    """Per row, the most recent phone among its viewed items (-1: none)."""
    n = len(offsets) - 1
    at = np.where(np.isin(items.category[seq_items], PHONES), np.arange(len(seq_items)), -1)
    last = np.full(n, -1, np.int64)
    filled = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(filled):
        last[filled] = np.maximum.reduceat(at, offsets[:-1][filled])
    inside = last >= offsets[:-1]  # a -1 or an index before the row's own views: no phone
    return np.where(inside, seq_items[np.clip(last, 0, max(len(seq_items) - 1, 0))] if len(seq_items) else -1, -1)


def _fits_the_phone(items: _Items, item: np.ndarray, phone: np.ndarray) -> np.ndarray:
    """Whether an accessory or watch fits the phone in the cart: a third party's, the phone
    maker's own, or a watch of the phone's OS."""
    maker = BRAND_OS[items.brand[item]] != OS_NONE
    same_brand = items.brand[item] == items.brand[phone]
    watch_os = (items.category[item] == WATCH) & (items.os[item] == items.os[phone])
    return ~maker | same_brand | watch_os


def _in_sequence(item: np.ndarray, seq_len: np.ndarray, offsets: np.ndarray, seq_items: np.ndarray) -> np.ndarray:
    """Whether each row's candidate item is among its recently viewed items."""
    row = np.repeat(np.arange(len(item)), seq_len)
    hit = np.zeros(len(item), dtype=bool)
    hit[row[seq_items == item[row]]] = True
    return hit


def _taste(c: _Customers, customer: np.ndarray, items: _Items, item: np.ndarray,
           matrices: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(w * u)^T A_f v / sqrt(d) per row, with a flow-specific A_f and the hidden dims down-weighted."""
    out = np.empty(len(customer))
    u = c.u * TASTE_DIM_WEIGHT
    for f in range(len(FLOWS)):  # three flows: a loop over groups, not rows
        rows = np.flatnonzero(flow == f)
        out[rows] = np.einsum("ij,ij->i", u[customer[rows]] @ matrices[f], items.v[item[rows]])
    return out / np.sqrt(LATENT_DIM)


def _logit_terms(rows: _Rows, shown: _Shown, intent: np.ndarray, brand_intent: np.ndarray, viewed: np.ndarray,
                 c: _Customers, items: _Items, world: dict[str, np.ndarray],
                 pages: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """The named, noise-free terms of the click, add-to-cart and purchase logits (they sum to each
    logit); `pages`: with each surface's own conversion rate."""
    f, i, cu = rows.flow, shown.item, rows.customer
    cat = items.category[i]
    match = cat == intent
    # A phone of another tier than the one intended still answers "I want a phone", mostly.
    tier_miss = ~match & np.isin(cat, PHONES) & np.isin(intent, PHONES)
    related = match | tier_miss
    boost = np.select([shown.kind == SEARCH_KIND, shown.kind == BROWSE_KIND],
                      [CLICK_INTENT["search"], CLICK_INTENT["browse"]], CLICK_INTENT["hidden"])
    search = shown.kind == SEARCH_KIND
    is_phone = np.isin(cat, PHONES)
    eup = f == FLOWS.index("EUP")
    taste = _taste(c, cu, items, i, world["click"], f)  # shared by click and (a little) purchase

    click = {
        "base": CLICK_BASE[f] + CLICK_CHANNEL[rows.channel],
        "affinity": CLICK_AFFINITY * FLOW_CATEGORY_AFFINITY[f, cat],
        "popularity": CLICK_POPULARITY * items.popularity[i],
        "price": -CLICK_PRICE_SENSITIVITY[f] * items.rel_price[i] + CLICK_DISCOUNT[f] * items.discount[i] / 10,
        "taste": CLICK_TASTE * taste,
        "intent": (boost * (match + CLICK_TIER_SHARE * tier_miss)
                   + CLICK_BRAND_INTENT * (search & related & (items.brand[i] == brand_intent))
                   + CLICK_SEARCH_MISMATCH * (search & ~related)
                   + CLICK_BROWSE_PAGE * (shown.page == BROWSE_PAGE + cat)),
        "viewed": CLICK_VIEWED * viewed,
        "position": CLICK_POSITION * rows.position,
        "device_age": CLICK_DEVICE_AGE * (eup & is_phone) * (c.device_age[cu] - CLICK_DEVICE_AGE_PIVOT),
    }

    instalment = items.price[i] * (1 - items.discount[i] / 100) / INSTALMENT_MONTHS
    affordability = np.log(instalment / c.budget[cu]) - AFFORDABILITY_PIVOT
    atc_taste = _taste(c, cu, items, i, world["atc"], f)
    atc = {
        "base": ATC_BASE[f] + ATC_CATEGORY[cat],
        "affordability": -ATC_AFFORDABILITY[f] * affordability,
        "item": ATC_DISCOUNT * items.discount[i] + ATC_RATING * (items.rating[i] - 4.0),
        "taste": ATC_TASTE * atc_taste,
    }

    purchase = {
        "base": PURCHASE_BASE[f] + PURCHASE_CHANNEL[rows.channel],
        "account": PURCHASE_TENURE * np.log1p(c.tenure[cu] / 12) + PURCHASE_LINES * c.lines[cu],
        "discount": PURCHASE_DISCOUNT * items.discount[i],
        "taste": PURCHASE_TASTE * taste,
        "credit": PURCHASE_CREDIT * c.credit[cu],
    }
    if pages:
        atc["surface"], purchase["surface"] = SURFACE_ATC[shown.surface], SURFACE_PURCHASE[shown.surface]
        atc["surface_fit"] = _surface_fit(shown, f, cat, related, items.rating[i], items.discount[i], atc_taste, items,
                                          viewed)
    return {"click": click, "atc": atc, "purchase": purchase}


def _surface_fit(shown: _Shown, flow: np.ndarray, cat: np.ndarray, related: np.ndarray, rating: np.ndarray,
                 discount: np.ndarray, atc_taste: np.ndarray, items: _Items, viewed: np.ndarray) -> np.ndarray:
    """Each surface's own add-to-cart term (SURFACE_FIT_*), on the rows of that surface."""
    product = shown.page - DETAIL_PAGE  # the category of the product page a detail row cross-sells on
    goes_with = np.isin(cat, GOES_WITH_A_PHONE) & np.isin(product, PHONES)
    surface = {name: shown.surface == k for k, name in enumerate(SURFACES + CHECKOUT_SURFACES)}
    fits = np.zeros(len(cat), bool)
    if shown.phone is not None and surface["interstitial"].any():
        on = np.flatnonzero(surface["interstitial"])
        fits[on] = _fits_the_phone(items, shown.item[on], shown.phone[on])
    return np.select(
        [surface["search"], surface["browse"], surface["landing"], surface["home"], surface["deals"], surface["detail"],
         surface["interstitial"], surface["cart"]],
        [SURFACE_FIT_SEARCH * (related - 0.5), SURFACE_FIT_BROWSE * (rating - 4.0),
         SURFACE_FIT_LANDING * FLOW_CATEGORY_AFFINITY[flow, cat], SURFACE_FIT_HOME * atc_taste,
         SURFACE_FIT_DEALS * discount, np.where(goes_with, SURFACE_FIT_DETAIL, -SURFACE_FIT_DETAIL / 3),
         SURFACE_FIT_INTERSTITIAL * (fits - 0.5), SURFACE_FIT_CART * (viewed - 0.5)], 0.0)


def _probabilities(rng: np.random.Generator, rows: _Rows, shown: _Shown, intent: np.ndarray,
                   brand_intent: np.ndarray, viewed: np.ndarray, c: _Customers, items: _Items,
                   world: dict[str, np.ndarray], drifted: np.ndarray | None = None,
                   pages: bool = False, concept: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true funnel probabilities: each logit is the sum of its terms plus per-impression noise.
    `drifted` marks the rows that see the price change, `concept` those after a concept drift;
    `pages`: surfaces convert at their own rates."""
    n = len(rows.flow)
    terms = _logit_terms(rows, shown, intent, brand_intent, viewed, c, items, world, pages)
    logits = {step: sum(t.values()) for step, t in terms.items()}
    if drifted is not None and drifted.any():  # rows after the price change meet the new prices
        sub = lambda nt: type(nt)(*(None if a is None else a[drifted] for a in nt))  # noqa: E731
        after = _logit_terms(sub(rows), sub(shown), intent[drifted], brand_intent[drifted], viewed[drifted], c,
                             _price_change(items)[0], world, pages)
        for step, t in after.items():
            logits[step][drifted] = sum(t.values())
    if concept is not None and concept.any():  # the click's favoured terms turned around (CONCEPT_FACTOR)
        turned = sum(terms["click"][name] for name in CONCEPT_CLICK_TERMS)
        logits["click"] = logits["click"] + np.where(concept, (CONCEPT_FACTOR - 1.0) * turned, 0.0)
    click = logits["click"] + rng.normal(0, CLICK_NOISE, n)
    atc = logits["atc"] + rng.normal(0, ATC_NOISE, n)
    purchase = logits["purchase"] + rng.normal(0, PURCHASE_NOISE, n)
    return _sigmoid(click), _sigmoid(atc), _sigmoid(purchase)


def _impressions_table(rng: np.random.Generator, config: SimulationConfig, c: _Customers, items: _Items,
                       world: dict[str, np.ndarray], drift_rng: np.random.Generator, n_before_launch: int) -> pd.DataFrame:
    """`items` may end with items launched at `config.drift_start` (those from n_before_launch on):
    histories, intents and the catalogue before the launch know only the others."""
    known = _Items(*(getattr(items, f.name)[:n_before_launch] for f in dataclasses.fields(_Items)))
    viewed, viewed_pages = _make_histories(rng, c, known, config.n_pages)
    ts_us = _timestamps_us(rng, config.n_impressions, config)
    rows = _make_rows(rng, c, ts_us, config, drift_rng)
    seq = _sequences(rows, viewed, viewed_pages)
    search = rng.random(len(ts_us)) < SEARCH_SHARE[rows.flow]
    intent = _intents(rng, rows, c, known, seq)
    brand_intent = _brand_intents(rng, rows, intent, c, known, search)
    launched = None if n_before_launch == items.n else np.arange(items.n) >= n_before_launch
    after_launch = None if launched is None else ts_us >= config.drift_start.value // 1000
    shown = _logging_policy(rng, rows, intent, brand_intent, search, items, seq, launched, after_launch)
    if config.checkout_pages:  # from a stream of its own: the other rows stay the storefront's
        shown = _checkout_pages(np.random.default_rng([config.seed, CHECKOUT_STREAM]), shown, rows, known, seq)
    in_seq = _in_sequence(shown.item, rows.seq_len, seq[0], seq[1])
    after_start = ts_us >= config.drift_start.value // 1000 if config.drift else None
    drifted = after_start if "price_change" in config.drift else None
    concept = after_start if "concept" in config.drift else None
    p_click, p_atc, p_purchase = _probabilities(rng, rows, shown, intent, brand_intent, in_seq, c, items, world, drifted,
                                                config.pages, concept)

    n = len(ts_us)
    click = rng.random(n) < p_click
    atc = click & (rng.random(n) < p_atc)
    purchase = atc & (rng.random(n) < p_purchase)

    # Query texts week by week, each week from its own stream: how many searches one week has
    # (which drift changes) does not reshuffle the texts of the others.
    query = np.full(n, "", dtype=object)
    week = (ts_us - config.windows.train[0].value // 1000) // (7 * 86_400_000_000)
    for w, week_rng in enumerate(rng.spawn(int(week.max()) + 1 if n else 0)):
        s = np.flatnonzero(search & (week == w))
        query[s] = _search_queries(week_rng, rows.flow[s], intent[s], brand_intent[s])
    offsets = seq[0]
    frame = pd.DataFrame({
        "impression_id": np.arange(n, dtype=np.int64),
        "event_timestamp": pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC"),
        "customer_id": rows.customer.astype(np.int64),
        "item_id": shown.item,
        "flow": np.array(FLOWS, dtype=object)[rows.flow],
        "page_id": shown.page,
        "channel": rows.channel.astype(np.int64),
        "position": rows.position.astype(np.int64),
        "search_query": query,
        "viewed_item_ids": list_array(offsets, seq[1], pa.int64()).to_pandas(),
        "visited_page_ids": list_array(offsets, seq[2], pa.int64()).to_pandas(),
        "click": click.astype(np.int8),
        "add_to_cart": atc.astype(np.int8),
        "purchase": purchase.astype(np.int8),
        "p_click": p_click.astype(np.float32),
        "p_add_to_cart_given_click": p_atc.astype(np.float32),
        "p_purchase_given_add_to_cart": p_purchase.astype(np.float32),
    })
    if not config.pages:
        return frame[IMPRESSIONS.names()]
    frame["surface"] = np.array(config.surfaces, dtype=object)[shown.surface]
    for use_case, p in oracle_scores(frame).items():  # one true-probability column per use case (the contract's oracles)
        frame[PAGES_ORACLES[use_case]] = p.astype(np.float32)
    return frame[pages_contract().tables["impressions"].names()]


PAGES_ORACLES = {u: f"p_{u.lower()}" for u in USE_CASES}


def pages_contract(checkout_pages: bool = False) -> Contract:
    """The storefront with surfaces (`SimulationConfig.pages`, and `checkout_pages`): its tables and
    features, tasks flow x surface x use case (every combination a route), each use case's true
    probability in a column of its own."""
    surfaces = SURFACES + CHECKOUT_SURFACES if checkout_pages else SURFACES
    routes = tuple(f"{flow}+{surface}" for flow in FLOWS for surface in surfaces)
    tasks = TaskVocabulary(routes, USE_CASES, dict(USE_CASE_LABEL), dict(USE_CASE_POPULATION), dict(PAGES_ORACLES),
                           tokens=("flow", "surface"))
    features = {t: {k: TELECOM.features(t, k) for k in ("categorical", "numerical")} for t in TELECOM.tables}
    return Contract.define("storefront-pages", features, tasks, TELECOM.funnel, source="grec simulate --pages")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def simulate(config: SimulationConfig) -> dict[str, pd.DataFrame]:
    """Simulate the three tables. Deterministic under ``config.seed``.

    Each part draws from its own stream of the seed, so the catalogue and the customers do not
    depend on n_impressions: runs of different sizes with the same seed (and the same explicit
    n_customers) share one world and differ only in their impressions.
    """
    # spawn(5)'s first four streams are spawn(4)'s: the drift stream added nothing to the others
    world_rng, item_rng, customer_rng, impression_rng, drift_rng = np.random.default_rng(config.seed).spawn(5)
    world = {"click": _random_flow_matrices(world_rng), "atc": _random_flow_matrices(world_rng)}
    items = _make_items(item_rng, config.n_items)
    customers, observed = _make_customers(customer_rng, config.customer_count)
    item_table = _items_table(item_rng, items, config)
    if "device_launch" in config.drift:
        items, predecessors = _launch(drift_rng, items)
        item_table = _launched_table(drift_rng, item_table, items, predecessors, config)
    return {
        "customers": _customers_table(customer_rng, customers, observed, config),
        "items": item_table,
        "impressions": _impressions_table(impression_rng, config, customers, items, world, drift_rng, config.n_items),
    }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if labels.min(initial=1) == labels.max(initial=0):
        return None  # one class only: undefined
    return float(roc_auc_score(labels, scores))


def _rates(frame: pd.DataFrame) -> dict[str, float]:
    n = max(len(frame), 1)
    clicks, atcs, purchases = (int(frame[k].sum()) for k in ("click", "add_to_cart", "purchase"))
    return {
        "rows": len(frame),
        "click_rate": clicks / n,
        "add_to_cart_rate": atcs / n,
        "purchase_rate": purchases / n,
        "add_to_cart_per_click": atcs / max(clicks, 1),
        "purchase_per_click": purchases / max(clicks, 1),
        "purchase_per_add_to_cart": purchases / max(atcs, 1),
        "search_share": float((frame["search_query"] != "").mean()) if len(frame) else 0.0,
    }


def _oracle_aucs(frame: pd.DataFrame) -> dict[str, float | None]:
    scores = ({u: frame[c].to_numpy(np.float64) for u, c in PAGES_ORACLES.items()} if "surface" in frame
              else oracle_scores(frame))
    out = {}
    for use_case in USE_CASES:
        population = USE_CASE_POPULATION[use_case]
        rows = np.ones(len(frame), bool) if population is None else frame[population].to_numpy() == 1
        labels = frame[USE_CASE_LABEL[use_case]].to_numpy()[rows]
        out[use_case] = _auc(labels, scores[use_case][rows]) if rows.any() else None
    return out


def summarize(tables: dict[str, pd.DataFrame]) -> dict:
    """Row counts, label rates (overall and per flow) and oracle AUCs per use case and per task."""
    imp = tables["impressions"]
    summary: dict = {"rows": {name: len(frame) for name, frame in tables.items()}}
    summary["rates"] = {"all": _rates(imp)}
    summary["oracle_auc"] = {"all": _oracle_aucs(imp)}
    for flow in FLOWS:
        part = imp[imp["flow"] == flow]
        summary["rates"][flow] = _rates(part)
        summary["oracle_auc"][flow] = _oracle_aucs(part)
    summary["oracle_auc_by_task"] = {
        f"{flow}+{use_case}": summary["oracle_auc"][flow][use_case] for flow in FLOWS for use_case in USE_CASES
    }
    if "surface" in imp:  # tasks per surface: each route's rates, positives and oracle AUC per use case
        route = imp["flow"].str.cat(imp["surface"], sep="+")
        summary["oracle_auc_by_task"], summary["positives_by_task"] = {}, {}
        checkout = bool(imp["surface"].isin(CHECKOUT_SURFACES).any())
        for name in pages_contract(checkout).tasks.flows:
            part = imp[route == name]
            summary["rates"][name] = _rates(part)
            for use_case, auc in _oracle_aucs(part).items():
                population = USE_CASE_POPULATION[use_case]
                rows = part if population is None else part[part[population] == 1]
                summary["oracle_auc_by_task"][f"{name}+{use_case}"] = auc
                summary["positives_by_task"][f"{name}+{use_case}"] = int(rows[USE_CASE_LABEL[use_case]].sum())
    return summary


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def simulate_to(out_dir: Path, config: SimulationConfig) -> dict[str, Path]:
    """Simulate, write the parquet tables and ``simulation.json`` (config and summary) into out_dir."""
    out_dir = Path(out_dir)
    began = time.perf_counter()
    tables = simulate(config)
    paths = write_tables(tables, out_dir, pages_contract(config.checkout_pages) if config.pages else TELECOM)
    elapsed = time.perf_counter() - began
    windows = config.windows
    meta = {
        "config": {**asdict(config), "n_customers": config.customer_count},
        "windows": {name: [t.isoformat() for t in windows[name]] for name in ("train", "test", "monitor")},
        "drift_start": config.drift_start.isoformat() if config.drift_start is not None else None,
        "seconds": round(elapsed, 2),
        "summary": summarize(tables),
        "files": {name: path.name for name, path in paths.items()},
    }
    meta_path = out_dir / "simulation.json"
    write_json(meta_path, meta, default=_json_default)
    return {**paths, "simulation": meta_path}
