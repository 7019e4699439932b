"""Risk: features as of a date, the explainable score, fitting and backtests, churn rates."""

from pipeline.risk.churn_rate import churn_rates
from pipeline.risk.features import FeatureOptions, compute_features, order_features_frame
from pipeline.risk.fit import RiskFitOptions, backtest, fit_orders, load_orders
from pipeline.risk.score import (
    FEATURE_NAMES,
    RiskModel,
    RiskResult,
    load_risk_model,
    save_score,
    score_account,
    score_accounts,
)

__all__ = [
    "FEATURE_NAMES", "FeatureOptions", "RiskFitOptions", "RiskModel", "RiskResult", "backtest", "churn_rates",
    "compute_features", "fit_orders", "load_orders", "load_risk_model", "order_features_frame", "save_score",
    "score_account", "score_accounts",
]
