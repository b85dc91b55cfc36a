//! `cbx providers new`, `wit` and `build`: starting a provider outside any cbx checkout (the
//! library side is `ops::scaffold` and `ops::build`).

use std::path::Path;

use anyhow::Result;

use crate::cli::args::{Lang, NewArgs};
use crate::context::Context;
use crate::ops::{build as builder, scaffold};

/// Runs `cbx providers new NAME`.
pub fn new(ctx: &Context, args: &NewArgs) -> Result<u8> {
    let language = match args.lang {
        Lang::Rust => scaffold::Language::Rust,
        Lang::Python => scaffold::Language::Python,
    };
    let parent = ctx.cwd.join(&args.parent);
    let dir = scaffold::new_project(&parent, &args.name, language)?;
    println!("created {}", dir.display());
    eprintln!(
        "next: cd {} and follow README.md: build, start the fake service, cbx providers test --component provider.wasm",
        dir.display()
    );
    Ok(0)
}

/// Runs `cbx providers wit --out DIR`.
pub fn wit(ctx: &Context, out: &Path) -> Result<u8> {
    let file = scaffold::write_wit(&ctx.cwd.join(out))?;
    println!(
        "wrote {} ({})",
        file.display(),
        crate::provider::api::CONTRACT
    );
    Ok(0)
}

/// Runs `cbx providers build [DIR]`.
pub fn build(ctx: &Context, dir: &Path) -> Result<u8> {
    let built = builder::build(&ctx.cwd.join(dir))?;
    println!(
        "built {} ({} bytes; {})",
        built.component.display(),
        built.size,
        built.how
    );
    Ok(0)
}
