//! `cbx providers list` and `cbx providers inspect`: what each provider is and may do.

use anyhow::Result;
use serde::Serialize;

use crate::audit::{AuditLog, Record};
use crate::cli::Context;
use crate::cli::args::AuditArgs;
use crate::cli::output;
use crate::config::OptionValue;
use crate::grant::approval::{Approval, Approvals};
use crate::grant::{GrantedEndpoint, Source};
use crate::provider::api::{self, OptionKind};
use crate::provider::contract;
use crate::provider::inspect::{self, Interface};
use crate::provider::registry::{self, Origin};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEntry {
    name: String,
    version: String,
    description: String,
    origin: Origin,
    digest: String,
    status: String,
}

/// Runs `cbx providers list`.
pub async fn list(ctx: &Context, json: bool) -> Result<u8> {
    let default = ctx.provider_name();
    let approvals = Approvals::new(ctx.dirs.grants_file());
    let mut entries = Vec::new();
    for p in registry::all(&ctx.dirs.installed_providers())? {
        let mut status = match &p.origin {
            Origin::Builtin => "built in".to_string(),
            Origin::File(_) => match approvals.check(p.name(), &p.digest, &p.manifest) {
                Ok(_) => "approved".into(),
                Err(e) if e.to_string().contains("changed since") => {
                    "changed: needs approval".into()
                }
                Err(e) if e.to_string().contains("asks for more") => {
                    "asks for more: needs approval".into()
                }
                Err(_) => "not approved".into(),
            },
        };
        if p.name() == default {
            status.push_str(", default");
        }
        entries.push(ListEntry {
            name: p.name().to_string(),
            version: version_of(&p),
            description: p.manifest.description.clone(),
            origin: p.origin.clone(),
            digest: p.digest.clone(),
            status,
        });
    }
    if json {
        output::json(&entries)?;
    } else {
        let mut rows = vec![[
            "NAME".to_string(),
            "VERSION".into(),
            "SOURCE".into(),
            "DIGEST".into(),
            "STATUS".into(),
        ]];
        for e in &entries {
            rows.push([
                e.name.clone(),
                e.version.clone(),
                e.origin.to_string(),
                format!("sha256:{}…", &e.digest[..12]),
                e.status.clone(),
            ]);
        }
        print!("{}", output::table(&rows));
    }
    Ok(0)
}

/// The provider's version as recorded at approval, or "built in".
fn version_of(p: &crate::provider::registry::ProviderPackage) -> String {
    match &p.origin {
        Origin::Builtin => env!("CARGO_PKG_VERSION").to_string(),
        Origin::File(_) => p.installed_version.clone().unwrap_or_else(|| "-".into()),
    }
}

/// Runs `cbx providers audit`.
pub fn audit(ctx: &Context, args: &AuditArgs) -> Result<u8> {
    let records: Vec<Record> = AuditLog::new(ctx.dirs.audit_log())
        .read()?
        .into_iter()
        .filter(|r| args.of.as_ref().is_none_or(|p| &r.provider == p))
        .collect();
    let skip = records.len().saturating_sub(args.last);
    let records = &records[skip..];
    if args.json {
        for r in records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(0);
    }
    if records.is_empty() {
        eprintln!(
            "the audit log is empty ({})",
            ctx.dirs.audit_log().display()
        );
        return Ok(0);
    }
    let mut rows = vec![[
        "TIME".to_string(),
        "PROVIDER".into(),
        "OPERATION".into(),
        "OUTCOME".into(),
        "REQUEST".into(),
        "STATUS".into(),
        "BYTES".into(),
        "CREDENTIALS".into(),
    ]];
    for r in records {
        rows.push([
            r.time.clone(),
            r.provider.clone(),
            r.operation.clone(),
            r.outcome.clone(),
            match (&r.method, &r.url) {
                (Some(m), Some(u)) => format!("{m} {u}"),
                _ => r.detail.clone().unwrap_or_default(),
            },
            r.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            if r.credentials.is_empty() {
                "-".into()
            } else {
                r.credentials.join(",")
            },
        ]);
    }
    print!("{}", ctx.redactor.redact(&output::table(&rows)));
    Ok(0)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    name: String,
    version: String,
    description: String,
    contract: &'static str,
    origin: Origin,
    digest: String,
    size: usize,
    imports: Vec<Interface>,
    exports: Vec<Interface>,
    features: Vec<String>,
    options: Vec<OptionReport>,
    manifest: ManifestReport,
    approval: String,
    approved: Option<Approval>,
    wasi: bool,
    grant: GrantReport,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OptionReport {
    name: String,
    kind: &'static str,
    description: String,
    default: Option<String>,
    value: Option<String>,
    origin: Option<crate::config::Origin>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestReport {
    origin: String,
    endpoints: Vec<EndpointReport>,
    credentials: Vec<CredentialReport>,
    auth_one_of: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointReport {
    name: String,
    url: String,
    env: Option<String>,
    description: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialReport {
    name: String,
    env: String,
    endpoint: String,
    header: String,
    format: String,
    secret: bool,
    requires: Vec<String>,
    description: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantReport {
    endpoints: Vec<GrantedEndpoint>,
    credentials: Vec<GrantedCredential>,
    auth_problem: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantedCredential {
    name: String,
    env: String,
    set: bool,
    attached: bool,
    header: String,
    endpoint: String,
    endpoint_url: Option<String>,
}

/// Runs `cbx providers inspect NAME`.
pub async fn inspect(ctx: &Context, name: &str, json: bool) -> Result<u8> {
    let (loaded, refused) = ctx.load_for_review(name).await?;
    let (imports, exports) = inspect::interfaces(loaded.engine.wasmtime(), &loaded.component);
    let env_vars = ctx.option_vars(name);
    let values: Vec<OptionValue> = ctx
        .config
        .options(
            name,
            &loaded.info.options,
            &loaded.package.manifest.user_only_options,
            &ctx.global.options,
            &env_vars,
        )
        .unwrap_or_default();
    let m = &loaded.package.manifest;
    let report = Inspection {
        name: loaded.info.name.clone(),
        version: loaded.info.version.clone(),
        description: loaded.info.description.clone(),
        contract: api::CONTRACT,
        origin: loaded.package.origin.clone(),
        digest: loaded.package.digest.clone(),
        size: loaded.package.component.len(),
        imports,
        exports,
        features: loaded.info.features.clone(),
        options: loaded
            .info
            .options
            .iter()
            .map(|o| {
                let v = values.iter().find(|v| v.name == o.name);
                OptionReport {
                    name: o.name.clone(),
                    kind: match o.kind {
                        OptionKind::Text => "text",
                        OptionKind::Integer => "integer",
                        OptionKind::Boolean => "boolean",
                    },
                    description: o.description.clone(),
                    default: o.default.clone(),
                    value: v.map(|v| v.value.clone()),
                    origin: v.map(|v| v.origin.clone()),
                }
            })
            .collect(),
        manifest: ManifestReport {
            origin: m.origin.clone(),
            endpoints: m
                .endpoints
                .iter()
                .map(|e| EndpointReport {
                    name: e.name.clone(),
                    url: e.url.to_string(),
                    env: e.env.clone(),
                    description: e.description.clone(),
                })
                .collect(),
            credentials: m
                .credentials
                .iter()
                .map(|c| CredentialReport {
                    name: c.name.clone(),
                    env: c.env.clone(),
                    endpoint: c.endpoint.clone(),
                    header: c.header.clone(),
                    format: c.format.clone(),
                    secret: c.secret,
                    requires: c.requires.clone(),
                    description: c.description.clone(),
                })
                .collect(),
            auth_one_of: m
                .auth
                .as_ref()
                .map(|a| a.one_of.clone())
                .unwrap_or_default(),
        },
        approval: match (&loaded.package.origin, &loaded.approval) {
            (Origin::Builtin, _) => "built into cbx (trusted with cbx itself)".into(),
            (Origin::File(_), Some(a)) => format!(
                "approved {} (sha256 {}…, from {})",
                a.approved_at,
                &a.sha256[..12],
                a.source
            ),
            (Origin::File(_), None) => format!(
                "REFUSED: {} (shown with an empty grant)",
                refused.as_deref().unwrap_or("not approved")
            ),
        },
        approved: loaded.approval.clone(),
        wasi: contract::check(loaded.engine.wasmtime(), &loaded.component)
            .map(|f| f.wasi)
            .unwrap_or(false),
        grant: GrantReport {
            endpoints: loaded.grant.endpoints.clone(),
            credentials: m
                .credentials
                .iter()
                .map(|c| GrantedCredential {
                    name: c.name.clone(),
                    env: c.env.clone(),
                    set: ctx.var(&c.env).is_some_and(|v| !v.trim().is_empty()),
                    attached: loaded.grant.credentials.iter().any(|g| g.name == c.name),
                    header: c.header.clone(),
                    endpoint: c.endpoint.clone(),
                    endpoint_url: loaded
                        .grant
                        .endpoints
                        .iter()
                        .find(|e| e.name == c.endpoint)
                        .map(|e| e.url.to_string()),
                })
                .collect(),
            auth_problem: loaded
                .grant
                .auth_problem
                .as_ref()
                .map(|p| p.message.clone()),
        },
    };
    if json {
        output::json(&report)?;
    } else {
        print!("{}", ctx.redactor.redact(&human(&report)));
    }
    Ok(0)
}

fn human(r: &Inspection) -> String {
    let mut s = String::new();
    let mut out = |line: String| {
        s.push_str(&line);
        s.push('\n');
    };
    out(format!("{} {} — {}", r.name, r.version, r.description));
    out(format!("  source:    {}", r.origin));
    out(format!(
        "  digest:    sha256:{} ({} bytes)",
        r.digest, r.size
    ));
    out(format!("  contract:  {}", r.contract));
    out(format!("  approval:  {}", r.approval));
    out(String::new());
    out("Imports (read from the component; everything it can call):".into());
    for i in &r.imports {
        out(format!(
            "  {:<32} {}",
            i.name,
            if i.functions.is_empty() {
                "(types only)".into()
            } else {
                i.functions.join(", ")
            }
        ));
    }
    out("Exports:".into());
    for e in &r.exports {
        out(format!("  {:<32} {}", e.name, e.functions.join(", ")));
    }
    if r.wasi {
        out(
            "  WASI is linked deny-by-default: no environment, arguments, files or sockets;".into(),
        );
        out("  stdout and stderr go to the provider's log; clocks and randomness work.".into());
    }
    out(String::new());
    out(format!("Manifest ({}) declares:", r.manifest.origin));
    for e in &r.manifest.endpoints {
        out(format!(
            "  endpoint {:<12} {}{}",
            e.name,
            e.url,
            e.env
                .as_ref()
                .map(|v| format!(" (override: {v})"))
                .unwrap_or_default()
        ));
    }
    for c in &r.manifest.credentials {
        out(format!(
            "  credential {:<12} {} → header `{}: {}` to endpoint `{}`{}{}",
            c.name,
            c.env,
            c.header,
            c.format,
            c.endpoint,
            if c.secret { "" } else { " (not secret)" },
            if c.requires.is_empty() {
                String::new()
            } else {
                format!(", requires {}", c.requires.join(", "))
            }
        ));
    }
    if !r.manifest.auth_one_of.is_empty() {
        out(format!(
            "  authentication: one of {}",
            r.manifest.auth_one_of.join(", ")
        ));
    }
    out(String::new());
    out("Effective grant (this invocation):".into());
    if r.grant.endpoints.is_empty() {
        out("  no network access".into());
    }
    for e in &r.grant.endpoints {
        let src = match &e.source {
            Source::Manifest(_) => "manifest default".to_string(),
            other => other.to_string(),
        };
        out(format!("  may reach {} (`{}`, from {src})", e.url, e.name));
    }
    for c in &r.grant.credentials {
        out(format!(
            "  credential {:<12} {:<30} {}",
            c.name,
            format!("{} {}", c.env, if c.set { "(set)" } else { "(not set)" }),
            if c.attached {
                format!(
                    "attached as `{}` to {}",
                    c.header,
                    c.endpoint_url.as_deref().unwrap_or("-")
                )
            } else {
                "not attached".into()
            }
        ));
    }
    if let Some(p) = &r.grant.auth_problem {
        out(format!("  ! {p}"));
    }
    out(String::new());
    out("Options:".into());
    for o in &r.options {
        out(format!(
            "  {:<22} {:<8} = {:<24} {}",
            o.name,
            o.kind,
            o.value
                .as_deref()
                .map(|v| if v.is_empty() {
                    "\"\"".to_string()
                } else {
                    v.to_string()
                })
                .unwrap_or_else(|| "-".into()),
            o.origin
                .as_ref()
                .map(|o| format!("({o})"))
                .unwrap_or_default()
        ));
        out(format!("  {:<22} {}", "", o.description));
    }
    if !r.features.is_empty() {
        out(format!("Features: {}", r.features.join(", ")));
    }
    s
}
