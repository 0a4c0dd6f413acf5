//! Subscription plans and the storage each allows.

/// A plan users can choose.
pub struct Plan {
    pub name: &'static str,
    pub quota_bytes: u64,
    pub monthly_price_cents: u64,
}

pub const DEFAULT_PLAN: &str = "free";

pub const PLANS: &[Plan] = &[
    Plan {
        name: "free",
        quota_bytes: 5 << 30,
        monthly_price_cents: 0,
    },
    Plan {
        name: "personal",
        quota_bytes: 500 << 30,
        monthly_price_cents: 499,
    },
    Plan {
        name: "pro",
        quota_bytes: 2 << 40,
        monthly_price_cents: 999,
    },
    Plan {
        name: "business",
        quota_bytes: 10 << 40,
        monthly_price_cents: 2999,
    },
];

pub fn find(name: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.name == name)
}

/// The storage limit of an account: an administrator's override, else its plan's.
pub fn quota_for(plan: &str, quota_override: Option<i64>) -> u64 {
    match quota_override {
        Some(bytes) => bytes.max(0) as u64,
        None => find(plan)
            .map(|p| p.quota_bytes)
            .unwrap_or(PLANS[0].quota_bytes),
    }
}
