"""A second simulated world, of another domain than the storefront: a job board, written as a team's
own logs would be (their column names, their codes, their surfaces and funnel) so that it reaches
the platform the way a user's data does: `grec data init` drafts its contract (JOBS_INIT holds the
arguments), nothing in the platform knows it.

Why it exists: the storefront's outcomes were built with the storefront's match features in mind.
Here the outcomes are driven by what such logs are usually driven by, and what a model must learn
from the contract's columns alone: attribute-level matches between what the seeker viewed and what
is shown, between the query and what is shown, and surface-specific tastes; with a sparse
conversion task. Every impression stores its true probabilities (`p_view`, `p_save`,
`p_apply_given_view`), so the oracle and the reachable ceiling are known.

The generative story
--------------------
* **Jobs** (items): an occupation (24, in 6 families), a company (each in one industry, hiring in a
  few occupations of its own), the company's industry, a city, a seniority, a workplace (on site,
  hybrid, remote) and a contract type; numbers: salary (occupation x seniority x city level), the
  company's rating and size. A description spells the job out in words; a logo vector is the
  company's visual identity (company and industry, nothing of the job).
* **Seekers** (customers), observed: home city, education, the field of their last job (the family
  of their main occupation, 80% of the time), years of experience, open to remote (a noisy read of
  the hidden remote wish). Hidden: a main and a second occupation, a target seniority (from
  experience, with noise), mobility, a remote wish, two favourite industries, a salary expectation
  and an urgency (how readily they apply).
* **Histories**: each seeker's job views over time, drawn from the same preferences (occupations,
  city, industries, companies they return to), with the page of each view. An impression carries
  the last views before it (0 to 20): the attributes of what was viewed are where the hidden
  occupations, city and companies show.
* **Surfaces** (flows): HOME (a feed), SEARCH (a query names an occupation or a family, often a
  city, sometimes a modifier; typos and vague queries too), ALERT (the saved alert's jobs, by
  email), SIMILAR (the "similar jobs" box under the last job viewed). Each shows jobs by its own
  logging policy (popularity, the query, the alert, the anchor job).
* **Outcomes**, each a logistic function of its own mix, with per-impression noise:
  view: occupation match with the hidden intent (a session's occupation, seen in the query on
  SEARCH, in the history elsewhere) and preferences, family match, city fit (home city or remote
  for the immobile), seniority distance, industry taste, a company viewed before, popularity,
  position; the weights differ per surface (SEARCH follows the query, SIMILAR the anchor job,
  ALERT is bound to the city). save | view: salary against the expectation, remote wish, rating,
  surface. apply | view (the sparse conversion, about 7% of views): exact occupation, seniority,
  city, salary, contract type, urgency.

Deterministic under `JobsConfig.seed`; vectorised numpy (strings formatted per distinct value).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from grec.data.contract import list_array
from grec.data.jobs_catalog import (
    ALERT, CITIES, CITY_PAY, CITY_SIZE, FAMILIES, FAMILY_SALARY, FAMILY_WORDS, HOME, INDUSTRIES, MAX_HISTORY, N_OCC,
    OCC_FAMILY, OCCUPATIONS, SEARCH, SENIORITY_PAY, SIMILAR, SURFACE_SHARE, SURFACES, Jobs, descriptions, draw, logos,
    make_jobs,
)
from grec.io import atomic_folder, write_json, write_parquet

# The `grec data init` arguments that describe these logs (what a team would pass for its own)
JOBS_INIT = {
    "use_cases": {"VIEW": "viewed", "SAVE": "saved", "APPLY": "applied"},
    "populations": {"APPLY": "viewed"},
    "funnel": [("viewed", "saved"), ("viewed", "applied")],
    "oracles": {"VIEW": "p_view", "SAVE": "p_save", "APPLY": "p_apply_given_view"},
}


def init_command(folder: Path) -> str:
    """The `grec data init` command that drafts these logs' contract (JOBS_INIT as flags)."""
    flags = [f"--use-case {u}={c}" for u, c in JOBS_INIT["use_cases"].items()]
    flags += [f"--population {u}={c}" for u, c in JOBS_INIT["populations"].items()]
    flags += [f"--funnel {a},{b}" for a, b in JOBS_INIT["funnel"]]
    flags += [f"--oracle {u}={c}" for u, c in JOBS_INIT["oracles"].items()]
    return f"grec data init {folder} " + " ".join(flags)


@dataclass(frozen=True)
class JobsConfig:
    n_impressions: int = 240_000
    n_seekers: int | None = None  # default: n_impressions // 20, at least 200
    n_jobs: int = 2_400
    n_companies: int = 300
    start: str = "2026-03-02"  # UTC
    train_weeks: int = 5  # the last of them is the validation week of the default time split
    test_weeks: int = 1
    logo_dim: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_impressions < 1 or self.n_jobs < 2 * N_OCC or self.n_companies < 10:
            raise ValueError(f"n_impressions >= 1, n_jobs >= {2 * N_OCC} and n_companies >= 10 are required")
        if self.train_weeks < 1 or self.test_weeks < 0:
            raise ValueError("train_weeks >= 1 and test_weeks >= 0 are required")

    @property
    def seeker_count(self) -> int:
        return self.n_seekers if self.n_seekers is not None else max(200, self.n_impressions // 20)

    @property
    def start_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_time(self) -> pd.Timestamp:
        return self.start_time + pd.Timedelta(weeks=self.train_weeks + self.test_weeks)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))






# ---------------------------------------------------------------------------------------------
# Seekers


@dataclass
class _Seekers:
    home_city: np.ndarray
    education: np.ndarray
    field: np.ndarray  # observed: family of the last job (noisy read of the main occupation's)
    experience: np.ndarray  # years
    open_to_remote: np.ndarray  # observed, noisy
    main: np.ndarray  # hidden: main occupation
    second: np.ndarray  # hidden: second occupation
    target_seniority: np.ndarray  # hidden, float 0-3
    mobility: np.ndarray  # hidden, 0-1: how little a city other than home matters
    remote_wish: np.ndarray  # hidden 0/1
    industries: np.ndarray  # hidden (n, 2) favourite industries
    expectation: np.ndarray  # hidden, salary expected (thousands)
    urgency: np.ndarray  # hidden logit shift of applying
    activity: np.ndarray  # how many views a seeker's history grows to (0-40)

    @property
    def n(self) -> int:
        return len(self.home_city)


def _make_seekers(rng: np.random.Generator, n: int) -> _Seekers:
    main = rng.integers(0, N_OCC, n)
    same_family = rng.random(n) < 0.6
    sibling = np.array([rng.choice(np.flatnonzero((OCC_FAMILY == OCC_FAMILY[o]) & (np.arange(N_OCC) != o))) for o in range(N_OCC)])
    second = np.where(same_family, sibling[main], rng.integers(0, N_OCC, n))
    field = np.where(rng.random(n) < 0.8, OCC_FAMILY[main], rng.integers(0, len(FAMILIES), n))
    experience = np.clip(rng.gamma(2.0, 3.5, n), 0, 40)
    target = np.clip(np.log1p(experience) * 1.15 - 0.3 + rng.normal(0, 0.45, n), 0, 3)
    remote_wish = (rng.random(n) < 0.3).astype(np.int64)
    open_to_remote = np.where(rng.random(n) < 0.8, remote_wish, 1 - remote_wish)
    home = draw(rng, np.tile(CITY_SIZE, (n, 1)))
    expectation = (FAMILY_SALARY[OCC_FAMILY[main]] * np.interp(target, [0, 1, 2, 3], SENIORITY_PAY) * CITY_PAY[home]
                   * np.exp(rng.normal(0, 0.15, n)))
    return _Seekers(
        home_city=home, education=draw(rng, np.tile([0.25, 0.4, 0.28, 0.07], (n, 1))), field=field,
        experience=experience, open_to_remote=open_to_remote, main=main, second=second, target_seniority=target,
        mobility=rng.beta(1.2, 4.0, n), remote_wish=remote_wish,
        industries=rng.integers(0, len(INDUSTRIES), (n, 2)), expectation=expectation,
        urgency=rng.normal(0, 0.7, n), activity=np.minimum(rng.poisson(rng.gamma(1.5, 8.0, n)), 40))


def _preference(s: _Seekers, seeker: np.ndarray, jobs: Jobs, job: np.ndarray) -> np.ndarray:
    """How much seekers like jobs apart from the moment: occupations, family, industries, city, level."""
    occ = jobs.occupation[job]
    pref = (1.6 * (occ == s.main[seeker]) + 0.9 * (occ == s.second[seeker])
            + 0.5 * (jobs.family[job] == OCC_FAMILY[s.main[seeker]])
            + 0.45 * (jobs.industry[job][:, None] == s.industries[seeker]).any(1))
    return pref + _city_fit(s, seeker, jobs, job) - 0.45 * np.abs(jobs.seniority[job] - s.target_seniority[seeker])


def _city_fit(s: _Seekers, seeker: np.ndarray, jobs: Jobs, job: np.ndarray) -> np.ndarray:
    home = jobs.city[job] == s.home_city[seeker]
    remote = jobs.workplace[job] == 2
    return np.where(home, 0.6, np.where(remote, 0.3 + 0.5 * s.remote_wish[seeker], -1.6 * (1 - s.mobility[seeker])))


def _histories(rng: np.random.Generator, s: _Seekers, jobs: Jobs, config: JobsConfig,
               chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each seeker's views over time: (offsets (n+1,), job, page, time in us), time-ordered per
    seeker. A seeker returns to companies viewed before (a view of a company raises the next)."""
    counts = s.activity
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    seeker = np.repeat(np.arange(s.n), counts)
    job = np.empty(total, np.int64)
    n_jobs = len(jobs.occupation)
    for lo in range(0, s.n, chunk):  # (chunk, n_jobs) preference matrices
        ids = np.arange(lo, min(lo + chunk, s.n))
        rows = np.repeat(ids, n_jobs)
        pref = _preference(s, rows, jobs, np.tile(np.arange(n_jobs), len(ids))).reshape(len(ids), n_jobs)
        weights = np.exp(1.3 * pref + jobs.popularity)
        sel = (seeker >= lo) & (seeker < lo + len(ids))
        job[sel] = draw(rng, weights[seeker[sel] - lo])
    # returning to a company: a share of views re-draws among the jobs of a company seen before
    revisit = rng.random(total) < 0.25
    position = np.arange(total) - offsets[seeker]
    earlier = offsets[seeker] + (rng.random(total) * np.maximum(position, 1)).astype(np.int64)
    revisit &= position > 0
    company_jobs = pd.Series(np.arange(n_jobs)).groupby(jobs.company).apply(np.array)
    for i in np.flatnonzero(revisit):
        options = company_jobs[jobs.company[job[earlier[i]]]]
        job[i] = options[rng.integers(len(options))]
    page = draw(rng, np.tile([0.35, 0.3, 0.1, 0.15, 0.07, 0.03], (total, 1)))
    span_us = (config.end_time - config.start_time).value // 1000 + 28 * 86_400_000_000  # 4 weeks before the logs too
    first_us = config.start_time.value // 1000 - 28 * 86_400_000_000
    times = first_us + (rng.random(total) * span_us).astype(np.int64)
    order = np.lexsort((times, seeker))
    return offsets, job[order], page[order], times[order]


# ---------------------------------------------------------------------------------------------
# Impressions


def _queries(rng: np.random.Generator, intent: np.ndarray, s: _Seekers, seeker: np.ndarray,
             search: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search text for the rows of `search`: (text per row, the occupation it names or -1 when it
    names only a family, the city it names or -1)."""
    n = len(intent)
    text = np.full(n, "", dtype=object)
    named_occ, named_city = np.full(n, -1), np.full(n, -1)
    rows = np.flatnonzero(search)
    kind = rng.random(len(rows))
    by_family = kind < 0.2  # "tech jobs berlin": only a family
    named_occ[rows] = np.where(by_family, -1, intent[rows])
    city_named = rng.random(len(rows)) < 0.4
    city = np.where(rng.random(len(rows)) < 0.8, s.home_city[seeker[rows]], rng.integers(0, len(CITIES), len(rows)))
    named_city[rows] = np.where(city_named, city, -1)
    phrasing, modifier, typo = rng.integers(0, 3, len(rows)), rng.integers(0, 8, len(rows)), rng.random(len(rows)) < 0.06
    mods = ("remote", "senior", "junior", "part time", "", "", "", "")
    for j, r in enumerate(rows):
        family = FAMILIES[OCC_FAMILY[intent[r]]]
        words = FAMILY_WORDS[family] if by_family[j] else OCCUPATIONS[intent[r]][1]
        q = words[phrasing[j] % len(words)]
        if mods[modifier[j]]:
            q = f"{mods[modifier[j]]} {q}"
        if city_named[j]:
            q = f"{q} {CITIES[city[j]]}" if phrasing[j] != 1 else f"{q} in {CITIES[city[j]]}"
        if typo[j] and len(q) > 6:
            k = int(rng.integers(1, len(q) - 1))
            q = q[:k] + q[k + 1:]
        text[r] = q
    return text, named_occ, named_city


def _shown(rng: np.random.Generator, surface: np.ndarray, s: _Seekers, seeker: np.ndarray, jobs: Jobs,
           named_occ: np.ndarray, named_city: np.ndarray, intent: np.ndarray, anchor: np.ndarray,
           hist_job: np.ndarray) -> np.ndarray:
    """The logging policy: what each surface shows (a popular job, the query's, the alert's, the anchor's)."""
    n, n_jobs = len(surface), len(jobs.occupation)
    pop = np.exp(jobs.popularity)
    by_occ = [np.flatnonzero(jobs.occupation == o) for o in range(N_OCC)]
    by_family = [np.flatnonzero(jobs.family == f) for f in range(len(FAMILIES))]
    by_company = pd.Series(np.arange(n_jobs)).groupby(jobs.company).apply(np.array)
    occ_city = {}
    for o in range(N_OCC):
        for c in range(len(CITIES)):
            occ_city[o, c] = by_occ[o][jobs.city[by_occ[o]] == c]
    shown = rng.choice(n_jobs, n, p=pop / pop.sum())
    u = rng.random(n)

    def pick(pool: np.ndarray) -> int:
        return int(pool[rng.integers(len(pool))]) if len(pool) else -1

    for i in range(n):
        f, choice = surface[i], -1
        if f == SEARCH:
            occ = named_occ[i] if named_occ[i] >= 0 else -1
            if u[i] < 0.5:
                if occ >= 0 and named_city[i] >= 0:
                    choice = pick(occ_city[occ, named_city[i]])
                if choice < 0:
                    choice = pick(by_occ[occ]) if occ >= 0 else pick(by_family[OCC_FAMILY[intent[i]]])
            elif u[i] < 0.75:
                choice = pick(by_family[OCC_FAMILY[intent[i]]])
        elif f == ALERT:  # the alert: the main occupation the seeker set it for, in the home city
            if u[i] < 0.6:
                choice = pick(occ_city[s.main[seeker[i]], s.home_city[seeker[i]]])
            if choice < 0 and u[i] < 0.85:
                choice = pick(by_occ[s.main[seeker[i]]])
        elif f == SIMILAR:
            a = anchor[i]
            if u[i] < 0.45:
                choice = pick(by_occ[jobs.occupation[a]])
            elif u[i] < 0.65:
                choice = pick(by_company[jobs.company[a]])
        elif f == HOME and u[i] < 0.35 and hist_job[i] >= 0:  # the feed's recommender: like a viewed job
            choice = pick(by_occ[jobs.occupation[hist_job[i]]])
        if choice >= 0:
            shown[i] = choice
    return shown


def _impressions(rng: np.random.Generator, config: JobsConfig, s: _Seekers, jobs: Jobs,
                 history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    n = config.n_impressions
    offsets, h_job, h_page, h_time = history
    start_us, end_us = config.start_time.value // 1000, config.end_time.value // 1000
    hour_weight = np.r_[np.full(7, 0.3), np.full(12, 1.4), np.full(5, 0.8)]
    day = rng.integers(0, (end_us - start_us) // 86_400_000_000, n)
    hour = rng.choice(24, n, p=hour_weight / hour_weight.sum())
    ts = np.sort(start_us + day * 86_400_000_000 + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, n))
    active = np.maximum(s.activity, 1) ** 0.7  # active seekers come back more
    seeker = rng.choice(s.n, n, p=active / active.sum())
    # each impression sees the views before its time (searchsorted per seeker on the sorted times)
    key = (np.repeat(np.arange(s.n), np.diff(offsets)) * (end_us - h_time.min() + 1) + (h_time - h_time.min()))
    seen = np.searchsorted(key, seeker * (end_us - h_time.min() + 1) + (ts - h_time.min())) - offsets[seeker]
    length = np.minimum(seen, MAX_HISTORY)
    last = np.where(seen > 0, offsets[seeker] + seen - 1, -1)
    last_job = np.where(last >= 0, h_job[np.maximum(last, 0)], -1)
    surface = draw(rng, np.tile(SURFACE_SHARE, (n, 1)))
    surface = np.where((surface == SIMILAR) & (last_job < 0), HOME, surface)
    # the session's occupation: carrying on with the last view, or the main/second occupation
    carry = (last_job >= 0) & (rng.random(n) < 0.4)
    r = rng.random(n)
    base = np.where(r < 0.62, s.main[seeker], np.where(r < 0.9, s.second[seeker], rng.integers(0, N_OCC, n)))
    intent = np.where(carry, jobs.occupation[np.maximum(last_job, 0)], base)
    text, named_occ, named_city = _queries(rng, intent, s, seeker, surface == SEARCH)
    job = _shown(rng, surface, s, seeker, jobs, named_occ, named_city, intent, last_job, last_job)
    position = rng.integers(0, 10, n)

    # the history's companies (a company viewed before is a reason to look again)
    start = offsets[seeker] + seen - length
    window = start[:, None] + np.arange(MAX_HISTORY)[None, :]
    in_window = np.arange(MAX_HISTORY)[None, :] < length[:, None]
    hist = np.where(in_window, h_job[np.minimum(window, len(h_job) - 1)], -1)
    company_seen = ((jobs.company[np.maximum(hist, 0)] == jobs.company[job][:, None]) & in_window).any(1)

    occ = jobs.occupation[job]
    searching = surface == SEARCH
    query_occ = np.where(named_occ >= 0, occ == named_occ, jobs.family[job] == OCC_FAMILY[intent])
    query_city = np.where(named_city >= 0, (jobs.city[job] == named_city).astype(float) - 0.5, 0.0)
    pref = _preference(s, seeker, jobs, job)
    intent_match = 1.2 * (occ == intent) + 0.4 * (jobs.family[job] == OCC_FAMILY[intent])
    w_pref = np.array([1.0, 0.5, 0.8, 0.7])[surface]
    anchor_match = np.where(surface == SIMILAR, 1.1 * (occ == jobs.occupation[np.maximum(last_job, 0)])
                            + 0.8 * (jobs.company[job] == jobs.company[np.maximum(last_job, 0)]), 0.0)
    city_extra = np.where(surface == ALERT, 0.8 * _city_fit(s, seeker, jobs, job), 0.0)
    view_logit = (np.array([-4.6, -4.4, -5.2, -4.5])[surface] + w_pref * pref
                  + np.where(searching, 0.4, 1.0) * intent_match
                  + searching * (1.6 * query_occ + 1.2 * query_city) + anchor_match + city_extra
                  + 0.8 * company_seen + jobs.popularity[job] - 0.1 * position + rng.normal(0, 0.5, n))
    p_view = _sigmoid(view_logit)
    pay = np.log(jobs.salary[job] / s.expectation[seeker])
    remote_fit = (jobs.workplace[job] == 2) * (2 * s.remote_wish[seeker] - 1)
    save_logit = (-1.6 + np.array([0.0, 0.2, 0.6, -0.1])[surface] + 2.0 * pay + 0.5 * remote_fit
                  + 0.5 * (jobs.rating[job] - 3.7) + 0.3 * (occ == s.main[seeker]) + rng.normal(0, 0.5, n))
    p_save = _sigmoid(save_logit)
    seniority_gap = np.abs(jobs.seniority[job] - s.target_seniority[seeker])
    freelance_fit = np.where(jobs.contract[job] == 2, np.where(s.experience[seeker] > 8, 0.4, -0.8), 0.0)
    apply_logit = (-3.5 + np.array([0.0, 0.4, -0.2, 0.2])[surface] + 1.3 * (occ == s.main[seeker])
                   + 0.6 * (occ == s.second[seeker]) - 0.9 * seniority_gap + 0.8 * _city_fit(s, seeker, jobs, job)
                   + 1.2 * np.clip(pay, -0.5, 0.3) + freelance_fit + s.urgency[seeker] + rng.normal(0, 0.5, n))
    p_apply = _sigmoid(apply_logit)
    viewed = rng.random(n) < p_view
    saved = viewed & (rng.random(n) < p_save)
    applied = viewed & (rng.random(n) < p_apply)

    lengths = length.astype(np.int64)
    flat = hist[in_window]
    pages = np.where(in_window, h_page[np.minimum(window, len(h_page) - 1)], -1)[in_window]
    offsets_out = np.concatenate([[0], np.cumsum(lengths)])
    return pd.DataFrame({
        "impression_id": np.arange(n, dtype=np.int64) + 1_000_000,
        "event_timestamp": pd.to_datetime(ts, unit="us", utc=True),
        "customer_id": seeker.astype(np.int64),
        "item_id": job.astype(np.int64),
        "flow": np.array(SURFACES, dtype=object)[surface],
        "slot": position.astype(np.int64),
        "device": draw(rng, np.tile([0.55, 0.4, 0.05], (n, 1))).astype(np.int64),
        "search_query": text,
        "viewed_item_ids": pd.Series(np.split(flat.astype(np.int64), offsets_out[1:-1])),
        "visited_page_ids": pd.Series(np.split(pages.astype(np.int64), offsets_out[1:-1])),
        "viewed": viewed.astype(np.int8), "saved": saved.astype(np.int8), "applied": applied.astype(np.int8),
        "p_view": p_view.astype(np.float32), "p_save": (p_view * p_save).astype(np.float32),
        "p_apply_given_view": p_apply.astype(np.float32),
    })


# ---------------------------------------------------------------------------------------------
# Tables


def simulate_jobs(config: JobsConfig) -> dict[str, pd.DataFrame]:
    """The three tables, as a job board's logs would have them. Deterministic under the seed; the
    world (jobs, seekers, histories) does not depend on n_impressions."""
    job_rng, seeker_rng, history_rng, impression_rng = np.random.default_rng(config.seed).spawn(4)
    jobs = make_jobs(job_rng, config.n_jobs, config.n_companies)
    seekers = _make_seekers(seeker_rng, config.seeker_count)
    history = _histories(history_rng, seekers, jobs, config)
    posted = config.start_time - pd.Timedelta(days=60)
    items = pd.DataFrame({
        "item_id": np.arange(config.n_jobs, dtype=np.int64),
        "updated_at": pd.Series([posted] * config.n_jobs),
        "occupation": jobs.occupation.astype(np.int64), "job_family": jobs.family.astype(np.int64),
        "company": jobs.company.astype(np.int64), "industry": jobs.industry.astype(np.int64),
        "city": jobs.city.astype(np.int64), "seniority": jobs.seniority.astype(np.int64),
        "workplace": jobs.workplace.astype(np.int64), "contract": jobs.contract.astype(np.int64),
        "salary_k": jobs.salary, "company_rating": jobs.rating, "company_size_log10": jobs.size,
        "description": descriptions(job_rng, jobs),
        "image_embedding": list(logos(job_rng, jobs, config.n_companies, config.logo_dim)),
    })
    seekers_table = pd.DataFrame({
        "customer_id": np.arange(seekers.n, dtype=np.int64),
        "updated_at": pd.Series([config.start_time - pd.Timedelta(days=30)] * seekers.n),
        "home_city": seekers.home_city.astype(np.int64), "education": seekers.education.astype(np.int64),
        "field": seekers.field.astype(np.int64), "open_to_remote": seekers.open_to_remote.astype(np.int64),
        "experience_years": seekers.experience.astype(np.float32),
    })
    return {"customers": seekers_table, "items": items, "impressions": _impressions(impression_rng, config, seekers, jobs, history)}


_ARROW = {"event_timestamp": pa.timestamp("us", tz="UTC"), "updated_at": pa.timestamp("us", tz="UTC")}


def _arrow(frame: pd.DataFrame) -> pa.Table:
    arrays, names = [], []
    for name in frame.columns:
        values = frame[name]
        if name in ("viewed_item_ids", "visited_page_ids", "image_embedding"):
            cells = values.to_numpy()
            offsets = np.concatenate([[0], np.cumsum([len(c) for c in cells])])
            kind = pa.float32() if name == "image_embedding" else pa.int64()
            flat = np.concatenate(cells) if offsets[-1] else np.zeros(0)
            arrays.append(list_array(offsets, flat, kind))
        elif name in _ARROW:
            arrays.append(pa.array(values, type=_ARROW[name]))
        else:
            arrays.append(pa.array(values))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def summarize(tables: dict[str, pd.DataFrame]) -> dict:
    """Rates per surface and the oracle's AUC per task (what the true probabilities rank)."""
    from sklearn.metrics import roc_auc_score

    imp = tables["impressions"]
    out = {"rows": {k: len(v) for k, v in tables.items()}, "by_surface": {}}
    for surface in ("ALL", *SURFACES):
        part = imp if surface == "ALL" else imp[imp["flow"] == surface]
        entry = {"rows": len(part), "view_rate": float(part["viewed"].mean()),
                 "save_per_view": float(part["saved"].sum() / max(part["viewed"].sum(), 1)),
                 "apply_per_view": float(part["applied"].sum() / max(part["viewed"].sum(), 1))}
        for use_case, label, oracle, population in (("VIEW", "viewed", "p_view", None), ("SAVE", "saved", "p_save", None),
                                                    ("APPLY", "applied", "p_apply_given_view", "viewed")):
            rows = part if population is None else part[part[population] == 1]
            y = rows[label].to_numpy()
            entry[f"oracle_auc_{use_case}"] = float(roc_auc_score(y, rows[oracle])) if 0 < y.sum() < len(y) else None
        out["by_surface"][surface] = entry
    return out


def simulate_jobs_to(out_dir: Path, config: JobsConfig) -> dict[str, Path]:
    """Write customers.parquet, items.parquet, impressions.parquet (no contract: `grec data init`
    drafts it, with JOBS_INIT's arguments) and simulation.json, as one folder."""
    began = time.perf_counter()
    tables = simulate_jobs(config)
    with atomic_folder(Path(out_dir)) as tmp:
        for name, frame in tables.items():
            write_parquet(tmp / f"{name}.parquet", _arrow(frame))
        write_json(tmp / "simulation.json", {"world": "jobs", "config": {**asdict(config), "n_seekers": config.seeker_count},
                                             "seconds": round(time.perf_counter() - began, 2),
                                             "init": JOBS_INIT, "summary": summarize(tables)},
                   default=str)
    return {name: Path(out_dir) / f"{name}.parquet" for name in tables}
