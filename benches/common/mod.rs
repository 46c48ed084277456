//! Shared by the benches: the abusive phrases mixed into generated traffic
//! and a deterministic generator (no rand dependency, same input every run).
#![allow(dead_code)]

/// Abusive phrases, one of which goes into ~1% of fragments. Each must be
/// found by the engine on its own (checked before timing).
pub const ABUSE_EN: &[&str] = &[
    "You're a piece of shit.",
    "I'll kill you.",
    "you're trash",
    "You're garbage, all of you.",
];
pub const ABUSE_JA: &[&str] = &[
    "お前バカか。",
    "このクズ野郎！",
    "ぶっ殺すぞ。",
    "お前人間のクズだな。",
];

/// Numerical Recipes LCG: deterministic, no dependency.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}
