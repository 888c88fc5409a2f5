"""courses/03_monetisation/monetisation.py: closed-form answers worked out by hand."""

from __future__ import annotations

import csv
import importlib.util
import math

import numpy as np
import pytest

from grader.resources import COURSES_DIR

MODULE_DIR = COURSES_DIR / "03_monetisation"


def _load():
    spec = importlib.util.spec_from_file_location("monetisation", MODULE_DIR / "monetisation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


m = _load()


# ---- inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((MODULE_DIR / "data").glob("*.csv")), ids=lambda p: p.name)
def test_every_input_has_value_unit_source_and_date(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows, f"{path.name} is empty"
    assert set(rows[0]) == {"key", "value", "unit", "source", "date"}
    for row in rows:
        float(row["value"])
        assert row["unit"].strip() and row["source"].strip() and row["date"].strip(), row


def test_load_inputs_reads_values_and_flags_assumptions():
    benchmarks = m.load_inputs("benchmarks")
    assert benchmarks["saas_gross_margin_low"]["value"] == 0.60
    assert not m.is_assumption(benchmarks["saas_gross_margin_low"]["source"])
    assert m.is_assumption(benchmarks["seed004_price"]["source"])


# ---- 01 revenue models -----------------------------------------------------------------------

def test_revenue_formulas():
    assert m.api_usage_revenue(10, 2, 2.5, 10.0) == pytest.approx(45.0)
    assert m.subscription_revenue(1000, 100) == 100_000  # seed 004's R = U x P
    assert m.custom_work_revenue(2, 500_000, 0.2, 3) == pytest.approx(1_600_000)
    assert m.product_sales_revenue(300, 199) == 59_700
    assert m.advertising_revenue(1_000_000, 0.02, 0.5) == pytest.approx(10_000)
    assert m.data_services_revenue(4, 12, 2_000) == 96_000
    assert m.gross_margin(100, 40) == pytest.approx(0.6)


# ---- 02 unit economics -----------------------------------------------------------------------

def test_flop_rules_of_thumb():
    assert m.inference_flops_per_token(7e9) == 14e9
    assert m.training_flops(175e9, 300e9) == pytest.approx(3.15e23)  # GPT-3's reported 3.14e23


def test_decode_throughput_is_memory_bound_at_batch_one_and_compute_bound_at_large_batch():
    kw = dict(n_params=1e9, n_gpus=1, peak_flops=100e12, mfu=0.5, mem_bandwidth=1e12, bytes_per_param=2.0)
    # batch 1: reading 2 GB at 1 TB/s takes 2 ms -> 500 tokens/s (compute would take 40 us)
    assert m.decode_tokens_per_second(batch_size=1, **kw) == pytest.approx(500.0)
    # batch 1000: compute 1000 * 2e9 / 5e13 = 40 ms > 2 ms -> 25,000 tokens/s
    assert m.decode_tokens_per_second(batch_size=1000, **kw) == pytest.approx(25_000.0)


def test_decode_throughput_calibration_kv_cache_and_no_overlap():
    kw = dict(n_params=1e9, n_gpus=1, peak_flops=100e12, mfu=0.5, mem_bandwidth=1e12, bytes_per_param=2.0)
    # Llama 2 70B: 80 layers, 8 KV heads of 128 dims, 2 bytes -> 327,680 bytes per token of context
    assert m.kv_cache_bytes_per_token(80, 8, 128) == 327_680
    # 80 % of the bandwidth: 2 GB take 2.5 ms -> 400 tokens/s at batch 1
    assert m.decode_tokens_per_second(batch_size=1, bandwidth_efficiency=0.8, **kw) == pytest.approx(400.0)
    # batch 2 with 500 tokens of context at 1 MB each: 2 GB weights + 1 GB cache = 3 ms -> 2 / 3 ms
    assert m.decode_tokens_per_second(batch_size=2, kv_bytes_per_token=1e6, context_tokens=500, **kw) == pytest.approx(2 / 3e-3)
    # no overlap: 2 ms of memory + 40 ms of compute at batch 1000 -> 1000 / 42 ms
    assert m.decode_tokens_per_second(batch_size=1000, overlap=False, **kw) == pytest.approx(1000 / 42e-3)
    # the defaults are the plain roofline
    assert m.decode_tokens_per_second(batch_size=8, **kw) == m.decode_tokens_per_second(
        batch_size=8, bandwidth_efficiency=1.0, kv_bytes_per_token=0.0, context_tokens=0.0, overlap=True, **kw)


def test_serving_cost_and_price_for_margin():
    # 1,000 tokens/s, 100% busy -> 3.6M tokens per hour; one GPU at $3.60/h -> $1.00 per 1M tokens
    assert m.serving_cost_per_million_tokens(3.6, 1, 1000.0, 1.0) == pytest.approx(1.0)
    # half the paid hours idle doubles the cost
    assert m.serving_cost_per_million_tokens(3.6, 1, 1000.0, 0.5) == pytest.approx(2.0)
    assert m.price_for_margin(1.0, 0.6) == pytest.approx(2.5)
    assert m.gross_margin(m.price_for_margin(1.0, 0.6), 1.0) == pytest.approx(0.6)


def test_training_gpu_hours_and_amortisation():
    # 6 * 1e9 * 1e10 = 6e19 FLOPs at 1e14 * 0.5 FLOP/s = 1.2e6 s = 333.3 h
    assert m.training_gpu_hours(1e9, 1e10, 1e14, 0.5) == pytest.approx(1.2e6 / 3600)
    assert m.amortised_training_cost_per_million(1e6, 4e6) == pytest.approx(0.25)


# ---- 03 subscription business ----------------------------------------------------------------

def test_rate_conversions_compound_back():
    assert (1 - m.monthly_churn_from_annual(0.3)) ** 12 == pytest.approx(0.7)
    assert (1 + m.monthly_rate_from_annual(0.1)) ** 12 == pytest.approx(1.1)
    assert m.monthly_churn_from_annual(0.0) == 0.0


def test_subscriber_path_by_hand():
    # s1 = 100*0.9 + 10 = 100, constant at the steady state new/churn = 100
    assert m.subscriber_path(100, 10, 0.1, 3) == pytest.approx([100, 100, 100])
    # from zero: 10, 19, 27.1
    assert m.subscriber_path(0, 10, 0.1, 3) == pytest.approx([10, 19, 27.1])


def test_seed_004_numbers_break_even_in_month_35():
    # Seed 004: 1,000 users x 100 per month against 3.5M one-off: 3.5M / 100k = 35 months.
    flows = m.subscription_cash_flows(price=100, initial_subscribers=1000, new_per_month=0, monthly_churn=0,
                                      variable_cost=0, fixed_cost_per_month=0, one_off_cost=3_500_000, cac=0, months=48)
    assert flows[0] == -3_500_000 and flows[1] == 100_000
    assert m.break_even_month(flows) == 35
    assert m.break_even_month(flows[:35]) is None  # 34 operating months are not enough


def test_break_even_month_hand_computed_case():
    # cumulative: -100, -70, -40, -10, 20 -> month 4
    assert m.break_even_month([-100, 30, 30, 30, 30, 30]) == 4
    assert m.break_even_month([0, 5]) == 0
    assert m.break_even_month([-10, -1, -1]) is None


def test_npv_against_hand_computation():
    flows = [-1000, 500, 500, 500]
    by_hand = -1000 + 500 / 1.1 + 500 / 1.1**2 + 500 / 1.1**3  # 243.43
    assert m.npv(flows, 0.1) == pytest.approx(by_hand)
    assert m.npv(flows, 0.1) == pytest.approx(243.4260, abs=1e-4)
    assert m.npv(flows, 0.0) == pytest.approx(500.0)


def test_lifetime_value_is_the_discounted_sum():
    margin, churn, discount = 80.0, 0.03, 0.008
    t = np.arange(1, 5000)
    series = np.sum(margin * (1 - churn) ** (t - 1) / (1 + discount) ** t)
    assert m.lifetime_value(margin, churn, discount) == pytest.approx(series)
    assert m.lifetime_value(80, 0.04) == pytest.approx(2000)
    assert m.cac_payback_months(600, 80) == pytest.approx(7.5)


# ---- 04 market sizing and pricing --------------------------------------------------------------

def test_tam_sam_som_and_funnel():
    assert m.tam_sam_som(1e6, 1200, 0.1, 0.05) == pytest.approx((1.2e9, 1.2e8, 6e6))
    f = m.funnel(100_000, 0.05, 0.4, 0.04)
    assert f["paying"] == pytest.approx(80)


def test_linear_demand_and_optimal_prices():
    a, b = m.linear_demand(100.0, 1000.0, 1.0)  # unit elasticity at P0 -> P0 maximises revenue
    assert (a, b) == pytest.approx((2000.0, 10.0))
    assert m.revenue_maximising_price(a, b) == pytest.approx(100.0)
    # P* = P0 (1 + e) / (2 e): e = 2 -> 75
    a, b = m.linear_demand(100.0, 1000.0, 2.0)
    assert m.revenue_maximising_price(a, b) == pytest.approx(75.0)
    grid = np.linspace(1, a / b - 1, 200_001)
    assert grid[np.argmax((grid - 20) * (a - b * grid))] == pytest.approx(m.profit_maximising_price(a, b, 20), abs=1e-3)


# ---- 05 Shapley values and differential privacy ------------------------------------------------

def _glove_game(coalition):
    # players 0, 1 hold left gloves, player 2 the right glove; a pair is worth 1
    return float(min(len(coalition & {0, 1}), len(coalition & {2})))


def test_shapley_glove_game_known_answer():
    assert m.exact_shapley(3, _glove_game) == pytest.approx([1 / 6, 1 / 6, 2 / 3])


def test_shapley_efficiency_and_symmetry_axioms():
    weights = np.array([3.0, 1.0, 1.0, 5.0, 0.0])

    def value(coalition):  # non-additive: diminishing returns on total data
        return math.sqrt(sum(weights[list(coalition)]))

    phi = m.exact_shapley(5, value)
    assert phi.sum() == pytest.approx(value(frozenset(range(5))) - value(frozenset()))  # efficiency
    assert phi[1] == pytest.approx(phi[2])  # symmetry: identical players get the same
    assert phi[4] == pytest.approx(0.0)  # null player
    assert phi[3] > phi[0] > phi[1]


def test_additive_game_gives_each_player_its_weight():
    weights = [2.0, 5.0, 1.0]
    phi = m.exact_shapley(3, lambda s: sum(weights[i] for i in s))
    assert phi == pytest.approx(weights)


def test_sampled_shapley_agrees_with_exact():
    weights = np.array([3.0, 1.0, 1.0, 5.0, 2.0, 0.5])

    def value(coalition):
        return math.sqrt(sum(weights[list(coalition)]))

    exact = m.exact_shapley(6, value)
    estimate, stderr = m.sampled_shapley(6, value, 4000, np.random.default_rng(0))
    assert np.all(np.abs(estimate - exact) <= 4 * stderr + 1e-9)
    assert np.max(np.abs(estimate - exact)) < 0.02
    # every permutation's contributions sum to v(N) - v(empty): efficiency holds exactly
    assert estimate.sum() == pytest.approx(exact.sum())


def test_revenue_split_sums_to_revenue():
    split = m.revenue_split([0.2, 0.1, -0.05, 0.2], 1000)
    assert split.sum() == pytest.approx(1000)
    assert split[2] == 0 and split[0] == pytest.approx(400)


def test_laplace_mechanism_error_matches_scale():
    assert m.bounded_mean_sensitivity(0, 100, 1000) == pytest.approx(0.1)
    assert m.laplace_scale(0.1, 0.5) == pytest.approx(0.2)
    noisy = m.laplace_mechanism(10.0, 0.1, 0.5, np.random.default_rng(1), size=200_000)
    assert np.mean(np.abs(noisy - 10.0)) == pytest.approx(0.2, rel=0.02)  # E|Laplace(b)| = b


# ---- 06 advertising ----------------------------------------------------------------------------

def test_roc_auc_small_cases_and_sklearn_agreement():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert m.roc_auc([0, 1], [0.5, 0.5]) == 0.5
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) + 0.3 * y
    assert m.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_synthetic_impressions_are_reproducible_and_plausible():
    a = m.make_ad_impressions(20_000, np.random.default_rng(3))
    b = m.make_ad_impressions(20_000, np.random.default_rng(3))
    assert np.array_equal(a["clicked"], b["clicked"])
    assert a["X"].shape == (20_000, 12)
    assert 0.01 < a["clicked"].mean() < 0.10
    assert m.ecpm(0.02, 0.5) == pytest.approx(10.0)


# ---- 07 training services ----------------------------------------------------------------------

def test_cohort_profit_and_break_even_size():
    result = m.cohort_profit(learners=20, seat_price=1000, gpu_hours_per_learner=10, gpu_hourly_price=0.5,
                             instructor_hours=40, grading_hours_per_learner=2, instructor_hourly_rate=100,
                             platform_cost_per_cohort=1000, payment_fee_rate=0.03)
    # variable per learner: 5 + 200 + 30 = 235; fixed 5,000
    assert result["revenue"] == 20_000
    assert result["variable_cost"] == pytest.approx(4_700)
    assert result["fixed_cost"] == 5_000
    assert result["profit"] == pytest.approx(10_300)
    assert m.break_even_units(5_000, 1000, 235) == 7  # 5000 / 765 = 6.54 -> 7 learners
    assert m.break_even_units(5_000, 1000, 1000) is None
    assert m.break_even_units(765 * 6, 1000, 235) == 6  # exact division is not rounded up


# ---- sensitivity and Monte Carlo ---------------------------------------------------------------

def test_tornado_orders_inputs_by_swing():
    def model(a, b, c):
        return a + 10 * b + 0 * c

    rows = m.tornado(model, {"a": 1, "b": 1, "c": 1}, {"a": (0, 2), "b": (0, 2), "c": (0, 2)})
    assert [r[0] for r in rows] == ["b", "a", "c"]
    assert rows[0][1:] == (1.0, 21.0)


def test_monte_carlo_draws_only_the_uncertain_inputs():
    def model(a, b):
        return a * b

    out = m.monte_carlo(model, {"a": 2.0, "b": 3.0}, {"b": lambda rng, n: rng.uniform(0, 1, n)}, 10_000,
                        np.random.default_rng(4))
    assert out.shape == (10_000,)
    assert out.min() >= 0 and out.max() <= 2
    assert out.mean() == pytest.approx(1.0, abs=0.03)
