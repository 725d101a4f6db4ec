//! `podid-proxy init` (CONTRACT.md §5): pick the iptables backend, plan the IMDS redirect as data, apply it, check it.
//!
//! The decisions (which backend, what to feed `iptables-restore`, whether the
//! result is right, what to print) are pure; the binaries sit behind the
//! [`Iptables`] trait so the flow is tested without root.

mod tool;

use std::io::Write as _;
use std::process::ExitCode;

use podid_core::iptables::{self, Plan, RedirectConfig};

pub use self::tool::{
    InitError, Iptables, SystemIptables, ToolError, condense, net_admin_effective,
};
use crate::cli::{Backend, InitArgs};

/// Prefix of every line podid-init prints.
const PREFIX: &str = "podid-init:";

/// A concrete iptables backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `iptables-nft-*`.
    Nft,
    /// `iptables-legacy-*`.
    Legacy,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The redirect is installed and was checked.
    Installed {
        /// Backend used.
        flavor: Flavor,
        /// The redirect's rules, as `iptables-save` shows them.
        rules: Vec<String>,
        /// Whether the redirect was already fully there before this run.
        was_installed: bool,
    },
    /// `--dry-run`: the plan, not applied.
    Planned {
        /// Backend that would be used.
        flavor: Flavor,
        /// The plan.
        plan: Plan,
        /// Why the plan was made against an empty table, if it was.
        note: Option<String>,
    },
}

// === impl Flavor ===

impl Flavor {
    /// The save binary.
    pub fn save_bin(self) -> &'static str {
        match self {
            Flavor::Nft => "iptables-nft-save",
            Flavor::Legacy => "iptables-legacy-save",
        }
    }

    /// The restore binary.
    pub fn restore_bin(self) -> &'static str {
        match self {
            Flavor::Nft => "iptables-nft-restore",
            Flavor::Legacy => "iptables-legacy-restore",
        }
    }

    /// Name for people: `iptables-nft`, `iptables-legacy`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Nft => "iptables-nft",
            Flavor::Legacy => "iptables-legacy",
        }
    }
}

/// Runs the subcommand: one line on failure, the installed rules on success.
pub fn main(args: InitArgs) -> ExitCode {
    let net_admin = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| net_admin_effective(&s));
    match run(&args, &SystemIptables, net_admin) {
        Ok(outcome) => {
            let mut stdout = std::io::stdout().lock();
            for line in report(&outcome) {
                let _ = writeln!(stdout, "{line}");
            }
            if let Outcome::Planned {
                note: Some(note), ..
            } = &outcome
            {
                eprintln!("{PREFIX} {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.line());
            ExitCode::FAILURE
        }
    }
}

/// Chooses the backend, plans, and (unless `--dry-run`) applies and verifies.
///
/// `net_admin`: whether the process has CAP_NET_ADMIN, when known; it only
/// sharpens the error message when iptables fails without saying why.
pub fn run(
    args: &InitArgs,
    ipt: &impl Iptables,
    net_admin: Option<bool>,
) -> Result<Outcome, InitError> {
    let &InitArgs {
        proxy_uid,
        proxy_port,
        backend,
        dry_run,
        reject_imds,
    } = args;
    let cfg = RedirectConfig {
        proxy_uid,
        proxy_port,
        reject_imds,
        ..RedirectConfig::default()
    };
    let fail = |e| InitError::from_tool(e, net_admin);
    let flavor = match choose_backend(backend, ipt) {
        Ok(flavor) => flavor,
        // A dry run still shows what it would do where iptables cannot be read.
        Err(e) if dry_run => return Ok(planned_blind(&cfg, Flavor::Nft, &fail(e))),
        Err(e) => return Err(fail(e)),
    };
    let before = match ipt.save(flavor, Some("nat")) {
        Ok(text) => text,
        Err(e) if dry_run => return Ok(planned_blind(&cfg, flavor, &fail(e))),
        Err(e) => return Err(fail(e)),
    };
    let mut plan = iptables::plan(&before, &cfg);
    let before_filter = match reject_imds {
        true => Some(ipt.save(flavor, Some("filter")).map_err(fail)?),
        false => None,
    };
    let filter_plan = before_filter
        .as_deref()
        .map(|current| iptables::plan_filter(current, &cfg));
    if dry_run {
        if let Some(filter) = filter_plan {
            plan.restore.push_str(&filter.restore);
            plan.rules.extend(filter.rules);
        }
        return Ok(Outcome::Planned {
            flavor,
            plan,
            note: None,
        });
    }
    ipt.restore(flavor, &plan.restore).map_err(fail)?;
    let after = ipt.save(flavor, Some("nat")).map_err(fail)?;
    let not_installed = |rules: &[String]| InitError::NotInstalled {
        restore: flavor.restore_bin(),
        save: flavor.save_bin(),
        expected: rules.join("; "),
    };
    if !iptables::is_installed(&after, &cfg) {
        return Err(not_installed(&plan.rules));
    }
    let mut was_installed = iptables::is_installed(&before, &cfg);
    if let (Some(filter), Some(before_filter)) = (filter_plan, before_filter) {
        // The redirect is in place first, so no uid can reach IMDS in between.
        ipt.restore(flavor, &filter.restore).map_err(fail)?;
        let after = ipt.save(flavor, Some("filter")).map_err(fail)?;
        if !iptables::filter_is_installed(&after, &cfg) {
            return Err(not_installed(&filter.rules));
        }
        was_installed &= iptables::filter_is_installed(&before_filter, &cfg);
        plan.rules.extend(filter.rules);
    }
    Ok(Outcome::Installed {
        flavor,
        rules: plan.rules,
        was_installed,
    })
}

fn planned_blind(cfg: &RedirectConfig, flavor: Flavor, why: &InitError) -> Outcome {
    Outcome::Planned {
        flavor,
        plan: iptables::plan("", cfg),
        note: Some(format!("dry run planned against an empty nat table: {why}")),
    }
}

/// Resolves `--backend`: `auto` reads both backends' full rule sets (without
/// `-t`, which would create tables) and takes the one holding rules.
fn choose_backend(backend: Backend, ipt: &impl Iptables) -> Result<Flavor, ToolError> {
    match backend {
        Backend::Nft => Ok(Flavor::Nft),
        Backend::Legacy => Ok(Flavor::Legacy),
        Backend::Auto => {
            let read = |flavor| match ipt.save(flavor, None) {
                Ok(text) => Ok(Some(text)),
                Err(ToolError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
            let nft = read(Flavor::Nft)?;
            let legacy = read(Flavor::Legacy)?;
            pick(nft.as_deref(), legacy.as_deref()).ok_or(ToolError::NotFound {
                tool: Flavor::Nft.save_bin(),
            })
        }
    }
}

/// The auto choice from the two backends' `-save` output (`None`: not installed):
/// the one showing more rules, nft on a tie (including none at all).
pub fn pick(nft_save: Option<&str>, legacy_save: Option<&str>) -> Option<Flavor> {
    match (nft_save, legacy_save) {
        (None, None) => None,
        (Some(_), None) => Some(Flavor::Nft),
        (None, Some(_)) => Some(Flavor::Legacy),
        (Some(nft), Some(legacy)) if count_rules(legacy) > count_rules(nft) => Some(Flavor::Legacy),
        (Some(_), Some(_)) => Some(Flavor::Nft),
    }
}

/// Rules (`-A` lines) in `iptables-save` output, any table.
pub fn count_rules(save: &str) -> usize {
    save.lines()
        .filter(|l| l.trim_start().starts_with("-A "))
        .count()
}

/// The lines podid-init prints on stdout.
pub fn report(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Installed {
            flavor,
            rules,
            was_installed,
        } => {
            let how = if *was_installed {
                "was already installed; refreshed"
            } else {
                "installed"
            };
            let tables = if rules.iter().any(|r| r.contains(iptables::FILTER_CHAIN)) {
                "nat table; every other packet to IMDS rejected in the filter table"
            } else {
                "nat table"
            };
            std::iter::once(format!(
                "{PREFIX} IMDS redirect {how} with {} ({tables}):",
                flavor.name()
            ))
            .chain(rules.iter().map(|r| format!("{PREFIX}   {r}")))
            .collect()
        }
        Outcome::Planned { flavor, plan, .. } => std::iter::once(format!(
            "{PREFIX} dry run: would feed {} --noflush:",
            flavor.restore_bin()
        ))
        .chain(plan.restore.lines().map(|l| format!("{PREFIX}   {l}")))
        .collect(),
    }
}

#[cfg(test)]
mod tests;
