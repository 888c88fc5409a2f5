"""Formulas shared by the module 3 case studies (how AI models make money).

Plain functions on floats and NumPy arrays. Every docstring gives the units and the case study
(``01`` ... ``07``) that introduces the function. Money is in whatever currency the caller uses
(the notebooks say which: USD for API and GPU prices, CNY for seed 004's business); "month 0" is
the moment a one-off cost is paid, months ``1..H`` are operating months.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
SECONDS_PER_HOUR = 3600.0
MONTHS_PER_YEAR = 12


# --------------------------------------------------------------------------------------------
# Inputs with units and sources (all case studies)
# --------------------------------------------------------------------------------------------

def load_inputs(name: str) -> dict[str, dict]:
    """Read ``data/<name>.csv`` into {key: {"value": float, "unit", "source", "date"}}.

    Introduced in case study 01. Every figure a notebook takes from outside carries its unit,
    its source (or the word ``assumption``) and the date it was published or observed.
    """
    rows = {}
    with open(DATA_DIR / f"{name}.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows[row["key"]] = {
                "value": float(row["value"]),
                "unit": row["unit"],
                "source": row["source"],
                "date": row["date"],
            }
    return rows


def is_assumption(source: str) -> bool:
    """True when a source column marks a figure as an assumption rather than a published fact (01)."""
    return source.strip().lower().startswith("assumption")


# --------------------------------------------------------------------------------------------
# 01 Revenue-model catalogue
# --------------------------------------------------------------------------------------------

def api_usage_revenue(input_mtok: float, output_mtok: float, price_in: float, price_out: float) -> float:
    """Revenue of usage-priced API traffic (01).

    ``input_mtok``/``output_mtok``: millions of tokens sent and generated; ``price_in``/``price_out``:
    currency per million tokens. Returns currency.
    """
    return input_mtok * price_in + output_mtok * price_out


def subscription_revenue(users: float, price: float) -> float:
    """Seed 002's R = U x P for one period: paying users x price per user per period (01)."""
    return users * price


def custom_work_revenue(projects: float, fee_per_project: float, maintenance_rate: float, years: float) -> float:
    """Enterprise custom work: one-off project fees plus a yearly maintenance fee (01).

    ``maintenance_rate`` is the yearly maintenance charge as a fraction of the project fee;
    returns currency over ``years``.
    """
    return projects * fee_per_project * (1.0 + maintenance_rate * years)


def product_sales_revenue(units: float, unit_price: float) -> float:
    """Product sales (a device or a licence with a model inside): units x price per unit (01)."""
    return units * unit_price


def advertising_revenue(impressions: float, ctr: float, cpc: float) -> float:
    """Cost-per-click advertising: impressions x click-through rate x price per click (01, 06)."""
    return impressions * ctr * cpc


def data_services_revenue(clients: float, reports_per_client: float, price_per_report: float) -> float:
    """Data services sold as analyses or reports: clients x reports each x price per report (01)."""
    return clients * reports_per_client * price_per_report


def gross_margin(revenue: float, cost_of_revenue: float) -> float:
    """Gross margin as a fraction of revenue: (revenue - cost of revenue) / revenue (01, 02, 07)."""
    return (revenue - cost_of_revenue) / revenue


# --------------------------------------------------------------------------------------------
# 02 Unit economics of serving (and training) a model
# --------------------------------------------------------------------------------------------

def inference_flops_per_token(n_params: float) -> float:
    """About 2 N floating-point operations to generate one token with an N-parameter dense model (02).

    One multiply and one add per weight (Kaplan et al. 2020); attention over the context is
    ignored, which is fair for short contexts.
    """
    return 2.0 * n_params


def training_flops(n_params: float, n_tokens: float) -> float:
    """About 6 N D operations to train an N-parameter dense model on D tokens (02).

    2 N for the forward pass and 4 N for the backward pass, per token (Kaplan et al. 2020).
    """
    return 6.0 * n_params * n_tokens


def kv_cache_bytes_per_token(n_layers: int, n_kv_heads: int, head_dim: int, bytes_per_value: float = 2.0) -> float:
    """Bytes of keys and values one token of context holds (and each decoding step reads) (02).

    Two tensors (K and V) per layer, ``n_kv_heads x head_dim`` values each; with grouped-query
    attention ``n_kv_heads`` is smaller than the number of query heads (Llama 2 70B: 8 of 64)."""
    return 2.0 * n_layers * n_kv_heads * head_dim * bytes_per_value


def decode_tokens_per_second(
    n_params: float,
    batch_size: int,
    n_gpus: int,
    peak_flops: float,
    mfu: float,
    mem_bandwidth: float,
    bytes_per_param: float = 2.0,
    *,
    bandwidth_efficiency: float = 1.0,
    kv_bytes_per_token: float = 0.0,
    context_tokens: float = 0.0,
    overlap: bool = True,
) -> float:
    """Generated tokens per second of a model sharded over ``n_gpus`` GPUs (02).

    One decoding step produces ``batch_size`` tokens. It must read every weight once (memory
    time: ``n_params * bytes_per_param / (n_gpus * mem_bandwidth)`` seconds, bandwidth in bytes/s)
    and compute ``batch_size * 2 N`` operations (compute time at ``mfu`` x ``peak_flops`` per GPU,
    FLOP/s). The slower of the two sets the step time; this is the roofline that makes large
    batches cheap per token until compute is the bottleneck.

    The keyword-only options calibrate it: only ``bandwidth_efficiency`` of the datasheet bandwidth
    is reached; every step also reads the KV cache, ``kv_bytes_per_token`` for each of the
    ``context_tokens`` tokens of each sequence; ``overlap=False`` adds memory and compute time
    instead of taking the larger (a pessimistic bound for batches near the ridge point, where a
    real step is neither purely memory- nor purely compute-bound). The defaults give the plain
    roofline.
    """
    bytes_read = n_params * bytes_per_param + batch_size * context_tokens * kv_bytes_per_token
    memory_seconds = bytes_read / (n_gpus * mem_bandwidth * bandwidth_efficiency)
    compute_seconds = batch_size * inference_flops_per_token(n_params) / (n_gpus * peak_flops * mfu)
    step_seconds = max(memory_seconds, compute_seconds) if overlap else memory_seconds + compute_seconds
    return batch_size / step_seconds


def serving_cost_per_million_tokens(gpu_hourly_price: float, n_gpus: int, tokens_per_second: float, utilisation: float) -> float:
    """Cost of generating one million tokens (02).

    ``gpu_hourly_price``: currency per GPU-hour (paid whether busy or idle); ``utilisation``: the
    fraction of paid hours the GPUs spend serving traffic (0-1]. Returns currency per 1M tokens.
    """
    tokens_per_paid_hour = tokens_per_second * SECONDS_PER_HOUR * utilisation
    return n_gpus * gpu_hourly_price / tokens_per_paid_hour * 1e6


def price_for_margin(cost: float, target_margin: float) -> float:
    """Price at which a unit with cost ``cost`` earns gross margin ``target_margin`` (02)."""
    return cost / (1.0 - target_margin)


def training_gpu_hours(n_params: float, n_tokens: float, peak_flops: float, mfu: float) -> float:
    """GPU-hours to train: 6 N D operations at ``mfu`` x ``peak_flops`` FLOP/s per GPU (02)."""
    return training_flops(n_params, n_tokens) / (peak_flops * mfu) / SECONDS_PER_HOUR


def amortised_training_cost_per_million(training_cost: float, lifetime_mtok: float) -> float:
    """Training cost spread over the millions of tokens the model serves in its life (02)."""
    return training_cost / lifetime_mtok


# --------------------------------------------------------------------------------------------
# 03 Subscription business (seed 004, corrected): one monthly time axis
# --------------------------------------------------------------------------------------------

def monthly_churn_from_annual(annual_churn: float) -> float:
    """Monthly churn that compounds to ``annual_churn`` over 12 months: 1 - (1 - a)^(1/12) (03)."""
    return 1.0 - (1.0 - annual_churn) ** (1.0 / MONTHS_PER_YEAR)


def monthly_rate_from_annual(annual_rate: float) -> float:
    """Monthly discount rate equivalent to ``annual_rate``: (1 + r)^(1/12) - 1 (03)."""
    return (1.0 + annual_rate) ** (1.0 / MONTHS_PER_YEAR) - 1.0


def subscriber_path(initial: float, new_per_month: float, monthly_churn: float, months: int) -> np.ndarray:
    """Paying subscribers in months 1..``months`` (03).

    Each month a fraction ``monthly_churn`` of last month's subscribers leaves and
    ``new_per_month`` join: s_t = s_{t-1} (1 - churn) + new, with s_0 = ``initial``.
    """
    subscribers = np.empty(months)
    current = float(initial)
    for month in range(months):
        current = current * (1.0 - monthly_churn) + new_per_month
        subscribers[month] = current
    return subscribers


def subscription_cash_flows(
    *,
    price: float,
    initial_subscribers: float,
    new_per_month: float,
    monthly_churn: float,
    variable_cost: float,
    fixed_cost_per_month: float,
    one_off_cost: float,
    cac: float,
    months: int,
) -> np.ndarray:
    """Net cash flow for months 0..``months`` of a subscription business (03).

    Month 0 holds the one-off cost (data, training) as a negative number. Month t >= 1 holds
    revenue (subscribers x price) minus serving cost (subscribers x ``variable_cost``), the fixed
    monthly cost, and acquisition spend (``new_per_month`` x ``cac``). All amounts in one currency
    per month; ``cac`` per new subscriber.
    """
    subscribers = subscriber_path(initial_subscribers, new_per_month, monthly_churn, months)
    flows = np.empty(months + 1)
    flows[0] = -one_off_cost
    flows[1:] = subscribers * (price - variable_cost) - fixed_cost_per_month - new_per_month * cac
    return flows


def break_even_month(cash_flows: Sequence[float]) -> int | None:
    """First month whose cumulative cash flow (from month 0) is >= 0; None if it never is (03)."""
    cumulative = np.cumsum(cash_flows)
    hits = np.nonzero(cumulative >= 0)[0]
    return int(hits[0]) if hits.size else None


def npv(cash_flows: Sequence[float], rate_per_period: float) -> float:
    """Net present value: sum of cf_t / (1 + rate)^t with t = 0 for the first flow (03).

    The month-0 flow is not discounted; month t is discounted t times.
    """
    flows = np.asarray(cash_flows, dtype=float)
    periods = np.arange(flows.size)
    return float(np.sum(flows / (1.0 + rate_per_period) ** periods))


def lifetime_value(monthly_margin: float, monthly_churn: float, monthly_discount: float = 0.0) -> float:
    """Expected (discounted) margin from one subscriber: m / (churn + discount) (03).

    Sum over t >= 1 of m (1 - churn)^(t-1) / (1 + discount)^t; with no discounting this is the
    familiar margin / churn. ``monthly_margin``: currency per subscriber per month.
    """
    return monthly_margin / (monthly_churn + monthly_discount)


def cac_payback_months(cac: float, monthly_margin: float) -> float:
    """Months of a subscriber's margin needed to repay the cost of acquiring them (03)."""
    return cac / monthly_margin


# --------------------------------------------------------------------------------------------
# 04 Market sizing and pricing
# --------------------------------------------------------------------------------------------

def tam_sam_som(customers: float, annual_value: float, serviceable_share: float, obtainable_share: float) -> tuple[float, float, float]:
    """Total, serviceable and obtainable market in currency per year (04).

    TAM = potential customers x annual spend each; SAM = TAM x the share you can serve
    (segment, region, language, channel); SOM = SAM x the share you can win in the plan horizon.
    """
    tam = customers * annual_value
    sam = tam * serviceable_share
    return tam, sam, sam * obtainable_share


def funnel(visitors: float, signup_rate: float, activation_rate: float, paid_conversion: float) -> dict[str, float]:
    """Freemium funnel counts: visitors -> sign-ups -> active free users -> paying users (04)."""
    signups = visitors * signup_rate
    active = signups * activation_rate
    paying = active * paid_conversion
    return {"visitors": visitors, "signups": signups, "active": active, "paying": paying}


def linear_demand(reference_price: float, reference_quantity: float, elasticity: float) -> tuple[float, float]:
    """Linear demand Q = a - b P through (P0, Q0) with point elasticity ``elasticity`` there (04).

    Elasticity is given as a positive number (-dQ/dP x P/Q). Returns (a, b).
    """
    slope = elasticity * reference_quantity / reference_price
    return reference_quantity + slope * reference_price, slope


def revenue_maximising_price(intercept: float, slope: float) -> float:
    """Price maximising P x (a - b P): a / (2 b) (04)."""
    return intercept / (2.0 * slope)


def profit_maximising_price(intercept: float, slope: float, unit_cost: float) -> float:
    """Price maximising (P - c)(a - b P): (a / b + c) / 2 (04)."""
    return (intercept / slope + unit_cost) / 2.0


# --------------------------------------------------------------------------------------------
# 05 Data cooperation: Shapley values and differential privacy
# --------------------------------------------------------------------------------------------

def exact_shapley(n_players: int, value: Callable[[frozenset], float]) -> np.ndarray:
    """Exact Shapley values of a game with ``n_players`` by enumerating every coalition (05).

    ``value(S)`` is the worth of coalition S (a frozenset of player indices), in any unit; the
    result is in the same unit. Cost: 2^n calls of ``value`` (cached), so only for a few players.
    """
    cache = {}

    def worth(coalition: frozenset) -> float:
        if coalition not in cache:
            cache[coalition] = value(coalition)
        return cache[coalition]

    phi = np.zeros(n_players)
    for player in range(n_players):
        others = [p for p in range(n_players) if p != player]
        for size in range(n_players):
            weight = math.factorial(size) * math.factorial(n_players - size - 1) / math.factorial(n_players)
            for coalition in itertools.combinations(others, size):
                base = frozenset(coalition)
                phi[player] += weight * (worth(base | {player}) - worth(base))
    return phi


def sampled_shapley(
    n_players: int, value: Callable[[frozenset], float], n_permutations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Permutation-sampling estimate of Shapley values and its standard error (05).

    Each random order of players adds them one by one; a player's marginal contribution when it
    joins is one unbiased draw of its Shapley value (Castro et al. 2009). Returns (estimate,
    standard error), both per player.
    """
    contributions = np.zeros((n_permutations, n_players))
    cache = {}
    for draw in range(n_permutations):
        coalition = frozenset()
        previous = cache.setdefault(coalition, value(coalition))
        for player in rng.permutation(n_players):
            coalition = coalition | {int(player)}
            if coalition not in cache:
                cache[coalition] = value(coalition)
            contributions[draw, player] = cache[coalition] - previous
            previous = cache[coalition]
    estimate = contributions.mean(axis=0)
    stderr = contributions.std(axis=0, ddof=1) / math.sqrt(n_permutations) if n_permutations > 1 else np.full(n_players, np.inf)
    return estimate, stderr


def revenue_split(shapley_values: Sequence[float], revenue: float) -> np.ndarray:
    """Split ``revenue`` in proportion to Shapley values (negative values get nothing) (05)."""
    phi = np.clip(np.asarray(shapley_values, dtype=float), 0.0, None)
    return revenue * phi / phi.sum()


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """Noise scale b = sensitivity / epsilon of the Laplace mechanism (05).

    Adding Laplace(0, b) noise to a query whose answer changes by at most ``sensitivity`` when one
    person's record changes gives epsilon-differential privacy (Dwork et al. 2006).
    """
    return sensitivity / epsilon


def laplace_mechanism(true_value: float, sensitivity: float, epsilon: float, rng: np.random.Generator, size=None):
    """Release ``true_value`` plus Laplace(0, sensitivity / epsilon) noise (05)."""
    return true_value + rng.laplace(0.0, laplace_scale(sensitivity, epsilon), size=size)


def bounded_mean_sensitivity(lower: float, upper: float, n: int) -> float:
    """Sensitivity of the mean of ``n`` values clipped to [lower, upper]: (upper - lower) / n (05)."""
    return (upper - lower) / n


# --------------------------------------------------------------------------------------------
# 06 Advertising and recommendation
# --------------------------------------------------------------------------------------------

def make_ad_impressions(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Synthetic ad impressions with a known click model (06; documented in data/README.md).

    Each impression pairs a user with one of 8 ad categories. Features: user interest in each
    category (8 numbers in [0, 1]), the ad's category, slot position (1-4), mobile or not, hour
    of day. The true click probability is logistic in interest x category match, position,
    device and an evening bump; clicks are Bernoulli draws of it. Returns arrays ``X`` (features
    for a model), ``p_click`` (true probability), ``clicked`` (0/1), ``category``, ``interest``.
    """
    n_categories = 8
    interest = rng.beta(0.6, 2.5, size=(n, n_categories))
    category = rng.integers(0, n_categories, size=n)
    position = rng.integers(1, 5, size=n)
    mobile = rng.random(n) < 0.6
    hour = rng.integers(0, 24, size=n)
    evening = ((hour >= 18) & (hour <= 22)).astype(float)
    match = interest[np.arange(n), category]
    logit = -4.2 + 3.0 * match - 0.35 * (position - 1) + 0.25 * mobile + 0.3 * evening
    p_click = 1.0 / (1.0 + np.exp(-logit))
    clicked = (rng.random(n) < p_click).astype(int)
    X = ad_features(interest, category, position, mobile, hour)
    return {"X": X, "p_click": p_click, "clicked": clicked, "category": category, "interest": interest,
            "position": position, "mobile": mobile, "hour": hour}


def ad_features(interest: np.ndarray, category: np.ndarray, position: np.ndarray, mobile: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Feature matrix for a click model: match, position, device, evening, one-hot category (06)."""
    n = category.shape[0]
    match = interest[np.arange(n), category]
    evening = ((hour >= 18) & (hour <= 22)).astype(float)
    one_hot = np.eye(interest.shape[1])[category]
    return np.column_stack([match, position, mobile.astype(float), evening, one_hot])


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve: probability a random positive outscores a random negative (06).

    Computed from ranks (the Mann-Whitney U statistic), ties counted as one half.
    """
    from scipy.stats import rankdata

    y = np.asarray(y_true)
    ranks = rankdata(scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ecpm(ctr: float, cpc: float) -> float:
    """Expected revenue per thousand impressions of a cost-per-click ad: 1000 x CTR x CPC (06)."""
    return 1000.0 * ctr * cpc


# --------------------------------------------------------------------------------------------
# 07 Training and consulting services (this platform)
# --------------------------------------------------------------------------------------------

def cohort_profit(
    *,
    learners: int,
    seat_price: float,
    gpu_hours_per_learner: float,
    gpu_hourly_price: float,
    instructor_hours: float,
    grading_hours_per_learner: float,
    instructor_hourly_rate: float,
    platform_cost_per_cohort: float,
    payment_fee_rate: float = 0.0,
) -> dict[str, float]:
    """Revenue, costs and profit of one course cohort (07).

    Revenue: learners x seat price. Variable cost per learner: GPU hours x GPU price, grading hours
    x instructor rate, and the payment fee (a fraction of the seat price). Fixed cost per cohort:
    teaching hours x instructor rate and the platform (hosting, hub) cost. All in one currency.
    """
    revenue = learners * seat_price
    variable = learners * (
        gpu_hours_per_learner * gpu_hourly_price
        + grading_hours_per_learner * instructor_hourly_rate
        + payment_fee_rate * seat_price
    )
    fixed = instructor_hours * instructor_hourly_rate + platform_cost_per_cohort
    profit = revenue - variable - fixed
    return {"revenue": revenue, "variable_cost": variable, "fixed_cost": fixed, "profit": profit,
            "margin": profit / revenue if revenue else float("nan")}


def break_even_units(fixed_cost: float, price: float, variable_cost_per_unit: float) -> int | None:
    """Smallest whole number of units whose contribution covers the fixed cost (07).

    None when each unit loses money (price <= variable cost).
    """
    contribution = price - variable_cost_per_unit
    if contribution <= 0:
        return None
    return max(0, math.ceil(fixed_cost / contribution - 1e-12))


# --------------------------------------------------------------------------------------------
# Sensitivity and uncertainty (every case study)
# --------------------------------------------------------------------------------------------

def tornado(model: Callable[..., float], base: Mapping[str, float], ranges: Mapping[str, tuple[float, float]]) -> list[tuple[str, float, float]]:
    """One-at-a-time sensitivity: the model's output with each input at its low and high value (all).

    ``model(**inputs)`` returns a number; ``ranges`` maps input names to (low, high). Returns
    [(name, output at low, output at high)] sorted by swing |high - low|, largest first.
    """
    rows = []
    for name, (low, high) in ranges.items():
        rows.append((name, float(model(**{**base, name: low})), float(model(**{**base, name: high}))))
    return sorted(rows, key=lambda row: abs(row[2] - row[1]), reverse=True)


def monte_carlo(
    model: Callable[..., float],
    base: Mapping[str, float],
    samplers: Mapping[str, Callable[[np.random.Generator, int], np.ndarray]],
    n_draws: int,
    rng: np.random.Generator,
    progress: bool = False,
) -> np.ndarray:
    """Model outputs for ``n_draws`` joint draws of the uncertain inputs (all).

    ``samplers[name](rng, n)`` returns n draws of that input; the others stay at ``base``.
    """
    draws = {name: sampler(rng, n_draws) for name, sampler in samplers.items()}
    indices = range(n_draws)
    if progress:
        from tqdm import tqdm  # text bars: saved widget bars break after a kernel restart

        indices = tqdm(indices, desc="Monte Carlo", leave=False)
    out = np.empty(n_draws)
    for i in indices:
        out[i] = model(**{**base, **{name: values[i] for name, values in draws.items()}})
    return out


def plot_tornado(ax, rows: Sequence[tuple[str, float, float]], base_value: float, xlabel: str, labels: Mapping[str, str] | None = None):
    """Draw a tornado chart of ``tornado()`` rows around the base-case output (all)."""
    labels = labels or {}
    names = [labels.get(name, name) for name, _, _ in rows][::-1]
    for y, (_name, low, high) in enumerate(rows[::-1]):
        ax.barh(y, low - base_value, left=base_value, color="tab:blue", alpha=0.8, label="input at low" if y == 0 else None)
        ax.barh(y, high - base_value, left=base_value, color="tab:orange", alpha=0.8, label="input at high" if y == 0 else None)
    ax.axvline(base_value, color="black", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_distribution(ax, draws: np.ndarray, xlabel: str, percentiles: Sequence[float] = (5, 50, 95), bins: int = 40):
    """Histogram of Monte Carlo draws with vertical lines at the given percentiles (all).

    Returns {percentile: value}.
    """
    finite = np.asarray(draws, dtype=float)
    finite = finite[np.isfinite(finite)]
    # Plain floats, so printed results read 0.495 rather than np.float64(0.495) under NumPy 2.
    values = {p: float(v) for p, v in zip(percentiles, np.percentile(finite, percentiles))}
    ax.hist(finite, bins=bins, color="tab:gray", alpha=0.7)
    for i, (p, v) in enumerate(values.items()):
        ax.axvline(v, color="tab:red", ls="--", lw=1)
        # Labels at staggered heights (axes coordinates), so close percentiles do not overprint.
        ax.text(v, 0.97 - 0.12 * (i % 3), f" P{p:g}", transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("draws")
    return values
