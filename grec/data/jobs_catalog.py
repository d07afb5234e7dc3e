"""The job board's catalogue (grec.data.simulate_jobs): its vocabulary (occupations in families,
industries, cities, seniorities, surfaces, pages) and the jobs companies post, with their
descriptions and logo vectors. What seekers do with them lives in simulate_jobs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------
# Vocabulary of the world

FAMILIES = ("software", "data", "design", "sales", "healthcare", "logistics")
OCCUPATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (  # (family, ways a seeker writes it)
    ("software", ("backend developer", "backend engineer", "java developer")),
    ("software", ("frontend developer", "react developer", "web developer")),
    ("software", ("mobile developer", "ios developer", "android developer")),
    ("software", ("devops engineer", "site reliability engineer", "cloud engineer")),
    ("data", ("data analyst", "business analyst", "bi analyst")),
    ("data", ("data engineer", "etl developer", "analytics engineer")),
    ("data", ("data scientist", "statistician", "data science")),
    ("data", ("machine learning engineer", "ml engineer", "ai engineer")),
    ("design", ("product designer", "ui designer", "digital designer")),
    ("design", ("graphic designer", "visual designer", "brand designer")),
    ("design", ("ux researcher", "user researcher", "usability researcher")),
    ("design", ("motion designer", "animator", "video editor")),
    ("sales", ("account executive", "sales executive", "account manager")),
    ("sales", ("sales manager", "head of sales", "regional sales manager")),
    ("sales", ("customer success manager", "client success", "customer success")),
    ("sales", ("business development representative", "sdr", "business development")),
    ("healthcare", ("registered nurse", "nurse", "icu nurse")),
    ("healthcare", ("pharmacist", "pharmacy technician", "clinical pharmacist")),
    ("healthcare", ("physiotherapist", "physical therapist", "physio")),
    ("healthcare", ("medical assistant", "healthcare assistant", "care assistant")),
    ("logistics", ("warehouse operative", "warehouse worker", "picker packer")),
    ("logistics", ("delivery driver", "courier", "van driver")),
    ("logistics", ("supply chain planner", "logistics planner", "demand planner")),
    ("logistics", ("forklift operator", "forklift driver", "reach truck operator")),
)
N_OCC = len(OCCUPATIONS)
OCC_FAMILY = np.array([FAMILIES.index(f) for f, _ in OCCUPATIONS])
FAMILY_WORDS = {"software": ("software jobs", "tech jobs", "developer jobs"), "data": ("data jobs", "analytics jobs"),
                "design": ("design jobs", "creative jobs"), "sales": ("sales jobs", "sales roles"),
                "healthcare": ("healthcare jobs", "hospital jobs", "nursing jobs"),
                "logistics": ("logistics jobs", "warehouse jobs", "driving jobs")}
SKILLS = {"software": "APIs, code review, testing", "data": "SQL, dashboards, statistics",
          "design": "prototypes, visual systems, user journeys", "sales": "pipeline, targets, client meetings",
          "healthcare": "patient care, shifts, clinical standards", "logistics": "stock, routes, safety rules"}
# Median yearly salary (thousands) of each family, and what seniority adds
FAMILY_SALARY = np.array([62.0, 60.0, 50.0, 52.0, 44.0, 34.0])
SENIORITY = ("junior", "mid-level", "senior", "lead")
SENIORITY_PAY = np.array([0.75, 1.0, 1.3, 1.6])
WORKPLACES = ("on site", "hybrid", "remote")
CONTRACTS = ("permanent", "fixed-term", "freelance")
INDUSTRIES = ("fintech", "e-commerce", "hospital group", "logistics", "media", "consulting", "manufacturing",
              "public sector", "retail", "energy")
# How much each industry hires in each family (rows: industries, columns: families)
INDUSTRY_FAMILY = np.array([
    [5, 4, 1, 2, .2, .2], [4, 3, 2, 3, .1, 2], [.5, 1, .2, .5, 6, .5], [1, 1, .2, 1, .1, 6], [2, 2, 5, 2, .1, .2],
    [2, 4, 1, 4, .5, 1], [1, 1, .5, 2, .3, 4], [1, 2, .5, .5, 3, 1], [1, 1, 1, 4, .2, 4], [1, 2, .3, 2, .3, 2]])
CITIES = ("berlin", "hamburg", "munich", "cologne", "frankfurt", "stuttgart", "leipzig", "vienna", "zurich",
          "amsterdam", "rotterdam", "paris", "lyon", "madrid", "barcelona", "milan")
CITY_SIZE = np.array([8, 4, 5, 3, 3, 2, 1.5, 4, 2.5, 4, 1.5, 8, 2, 6, 4, 4])
CITY_PAY = np.array([1.0, 0.95, 1.1, 0.9, 1.05, 0.95, 0.8, 0.95, 1.5, 1.05, 0.9, 1.0, 0.85, 0.8, 0.8, 0.9])
SURFACES = ("HOME", "SEARCH", "ALERT", "SIMILAR")
HOME, SEARCH, ALERT, SIMILAR = range(4)
SURFACE_SHARE = np.array([0.36, 0.3, 0.14, 0.2])
PAGES = ("home feed", "search results", "alert email", "similar jobs", "company page", "saved jobs")
N_PAGES = len(PAGES)
MAX_HISTORY = 20
_SYLLABLES = ("nor", "vik", "tal", "ver", "a", "lum", "en", "stra", "ko", "mi", "sol", "dor", "qui", "ra", "bel", "tix")


def draw(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column per row of `weights` (R, C), with probability proportional to the row."""
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(weights))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(1), weights.shape[1] - 1)


# ---------------------------------------------------------------------------------------------
# Jobs and companies


@dataclass
class Jobs:
    occupation: np.ndarray
    family: np.ndarray
    company: np.ndarray
    industry: np.ndarray  # the company's
    city: np.ndarray
    seniority: np.ndarray
    workplace: np.ndarray
    contract: np.ndarray
    salary: np.ndarray  # thousands a year
    rating: np.ndarray  # the company's, 1-5
    size: np.ndarray  # log10 employees
    popularity: np.ndarray  # logit shift, hidden
    company_names: list[str]


def make_jobs(rng: np.random.Generator, n_jobs: int, n_companies: int) -> Jobs:
    k = n_companies
    industry_of = rng.integers(0, len(INDUSTRIES), k)
    company_city = draw(rng, np.tile(CITY_SIZE, (k, 1)))
    company_weight = rng.pareto(1.3, k) + 0.2  # a few companies post much of the board
    company_rating = np.clip(rng.normal(3.7, 0.5, k), 1.0, 5.0)
    company_size = np.clip(rng.normal(2.6, 0.8, k), 1.0, 5.5)
    # each company hires mostly in two or three occupations of its industry's families
    occ_weight = INDUSTRY_FAMILY[industry_of][:, OCC_FAMILY] * rng.gamma(0.5, 1.0, (k, N_OCC))
    names = ["".join(rng.choice(_SYLLABLES, rng.integers(2, 4))).capitalize() + rng.choice([" GmbH", " AG", "", " Labs", " Group"])
             for _ in range(k)]
    n = n_jobs
    company = draw(rng, np.tile(company_weight, (n, 1)))
    occupation = draw(rng, occ_weight[company])
    # most jobs are in the company's city, the rest anywhere
    city = np.where(rng.random(n) < 0.7, company_city[company], draw(rng, np.tile(CITY_SIZE, (n, 1))))
    seniority = draw(rng, np.tile([0.25, 0.4, 0.25, 0.1], (n, 1)))
    workplace = draw(rng, np.where((OCC_FAMILY[occupation] <= 2)[:, None], [0.35, 0.4, 0.25], [0.85, 0.12, 0.03]))
    contract = draw(rng, np.tile([0.7, 0.2, 0.1], (n, 1)))
    family = OCC_FAMILY[occupation]
    salary = (FAMILY_SALARY[family] * SENIORITY_PAY[seniority] * CITY_PAY[city]
              * np.exp(rng.normal(0, 0.12, n) + 0.05 * (company_size[company] - 2.6)))
    popularity = rng.normal(0, 0.45, n) + 0.25 * (company_rating[company] - 3.7)
    return Jobs(occupation, family, company, industry_of[company], city, seniority, workplace, contract,
                 salary.astype(np.float32), company_rating[company].astype(np.float32),
                 company_size[company].astype(np.float32), popularity, names)


def descriptions(rng: np.random.Generator, jobs: Jobs) -> list[str]:
    out = []
    phrasing = rng.integers(0, 3, len(jobs.occupation))
    for i in range(len(jobs.occupation)):
        family, words = OCCUPATIONS[jobs.occupation[i]]
        out.append(f"{SENIORITY[jobs.seniority[i]].capitalize()} {words[phrasing[i] % len(words)]} at "
                   f"{jobs.company_names[jobs.company[i]]}, {INDUSTRIES[jobs.industry[i]]}, in "
                   f"{CITIES[jobs.city[i]].capitalize()}: {WORKPLACES[jobs.workplace[i]]}, {CONTRACTS[jobs.contract[i]]}. "
                   f"{SKILLS[family].capitalize()}.")
    return out


def logos(rng: np.random.Generator, jobs: Jobs, n_companies: int, dim: int) -> np.ndarray:
    """A vector per company (its look: industry and identity), the same for all its jobs."""
    industry_look = rng.normal(0, 1, (len(INDUSTRIES), dim))
    industry_of = np.zeros(n_companies, np.int64)
    industry_of[jobs.company] = jobs.industry
    own = rng.normal(0, 1, (n_companies, dim))
    logo = 0.6 * industry_look[industry_of] + own
    logo /= np.linalg.norm(logo, axis=1, keepdims=True)
    return logo[jobs.company].astype(np.float32)
