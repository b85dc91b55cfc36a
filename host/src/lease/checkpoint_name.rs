//! Checkpoint names at the provider. Checkpoints carry no labels (Daytona's snapshots have
//! none), so the name says whose a checkpoint is: `cbx-ckpt-<owner id>_<name>`, where the
//! owner id is `lease::owner`'s (16 hex digits) and `<name>` the user's short name (`deps`).
//! Names of a cbx before owners, `cbx-ckpt-<name>`, have no owner (shown as "unknown"); they
//! cannot be mistaken for new ones, since a short name never contains `_`.
//!
//! Users type the short name; a checkpoint of another owner can also be named exactly, by
//! the owner-qualified form `list` shows for it (`<owner id>_<name>`) or by its full name.

use anyhow::Result;

use crate::error::{ErrorKind, Failure};
use crate::lease::owner::is_owner_id;
use crate::lease::view::OwnerKind;
use crate::terminal::inert;

/// Every checkpoint cbx makes is named with this prefix.
pub const PREFIX: &str = "cbx-ckpt-";
/// Separates the owner id from the short name.
const SEPARATOR: char = '_';
/// Longest short name.
pub const MAX_NAME: usize = 48;

/// A checkpoint's name as cbx gives it to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointName {
    /// The owner id of who made it; `None` for a name of a cbx before owners.
    pub owner: Option<String>,
    /// The user's short name.
    pub short: String,
}

/// A checkpoint as a user names it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointRef {
    /// The short name (`deps`): this owner's, else an unknown owner's, else another's.
    Short(String),
    /// One checkpoint exactly (`<owner>_deps`, `cbx-ckpt-…`).
    Exact(CheckpointName),
}

impl CheckpointName {
    /// This owner's checkpoint `short`.
    pub fn owned(owner: &str, short: &str) -> CheckpointName {
        CheckpointName {
            owner: Some(owner.to_string()),
            short: short.to_string(),
        }
    }

    /// The name the provider knows, `cbx-ckpt-<owner>_<short>` (or `cbx-ckpt-<short>`).
    pub fn service(&self) -> String {
        match &self.owner {
            Some(o) => format!("{PREFIX}{o}{SEPARATOR}{}", self.short),
            None => format!("{PREFIX}{}", self.short),
        }
    }

    /// The name of a checkpoint cbx made, from the provider's name; `None` for any other.
    pub fn parse(service: &str) -> Option<CheckpointName> {
        let rest = service.strip_prefix(PREFIX)?;
        let (owner, short) = match rest.split_once(SEPARATOR) {
            Some((owner, short)) if is_owner_id(owner) => (Some(owner.to_string()), short),
            Some(_) => return None,
            None => (None, rest),
        };
        valid_short(short).then(|| CheckpointName {
            owner,
            short: short.to_string(),
        })
    }

    /// Whose it is, seen from owner id `me`.
    pub fn owner_kind(&self, me: &str) -> OwnerKind {
        OwnerKind::of_id(self.owner.as_deref(), me)
    }

    /// How a user names it: the short name for this owner's or an unknown owner's,
    /// `<owner>_<short>` for another's (the short name alone may be someone else's too).
    pub fn shown(&self, me: &str) -> String {
        match &self.owner {
            Some(o) if o != me => format!("{o}{SEPARATOR}{}", self.short),
            _ => self.short.clone(),
        }
    }
}

impl CheckpointRef {
    /// What the user typed, checked: a short name, `<owner>_<short>` or a full name.
    pub fn parse(text: &str) -> Result<CheckpointRef> {
        if valid_short(text) && !text.starts_with(PREFIX) {
            return Ok(CheckpointRef::Short(text.to_string()));
        }
        let full = if text.starts_with(PREFIX) {
            text.to_string()
        } else {
            format!("{PREFIX}{text}")
        };
        match CheckpointName::parse(&full) {
            Some(name) if name.owner.is_some() || text.starts_with(PREFIX) => {
                Ok(CheckpointRef::Exact(name))
            }
            _ => Err(invalid(text)),
        }
    }

    /// The text that parses back to this reference.
    pub fn text(&self) -> String {
        match self {
            CheckpointRef::Short(s) => s.clone(),
            CheckpointRef::Exact(n) => n.service(),
        }
    }
}

/// A short name, checked: 1 to 48 lowercase letters, digits and dashes, not starting with a
/// dash (a leading `cbx-ckpt-` is dropped). For `create --name`, where only a short name
/// makes sense.
pub fn short_name(text: &str) -> Result<String> {
    let short = text.strip_prefix(PREFIX).unwrap_or(text);
    if valid_short(short) {
        Ok(short.to_string())
    } else {
        Err(invalid(text))
    }
}

fn valid_short(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn invalid(text: &str) -> anyhow::Error {
    Failure::new(
        ErrorKind::Usage,
        format!("`{}` is not a valid checkpoint name", inert(text)),
    )
    .hint(format!(
        "use 1 to {MAX_NAME} lowercase letters, digits and dashes, e.g. --name deps-installed"
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "0123456789abcdef";
    const OTHER: &str = "fedcba9876543210";

    #[test]
    fn names_carry_the_owner_and_old_names_have_none() {
        let mine = CheckpointName::owned(ME, "deps");
        assert_eq!(mine.service(), "cbx-ckpt-0123456789abcdef_deps");
        assert_eq!(CheckpointName::parse(&mine.service()), Some(mine.clone()));
        assert_eq!(mine.owner_kind(ME), OwnerKind::ThisMachine);
        assert_eq!(mine.shown(ME), "deps");
        let theirs = CheckpointName::parse("cbx-ckpt-fedcba9876543210_deps").unwrap();
        assert_eq!(theirs.owner_kind(ME), OwnerKind::Another);
        assert_eq!(theirs.shown(ME), "fedcba9876543210_deps");
        let old = CheckpointName::parse("cbx-ckpt-deps").unwrap();
        assert_eq!(old.owner, None);
        assert_eq!(old.owner_kind(ME), OwnerKind::Unknown);
        assert_eq!(old.service(), "cbx-ckpt-deps");
        // An old name that looks like an owner id is still an old name: no separator.
        let hexy = CheckpointName::parse("cbx-ckpt-0123456789abcdef-x").unwrap();
        assert_eq!(hexy.owner, None);
        for other in [
            "deps",
            "cbx-ckpt-",
            "cbx-ckpt-Deps",
            "cbx-ckpt-xyz_deps",
            "cbx-ckpt-0123456789abcdef_",
            "cbx-ckpt-0123456789abcdef_a_b",
        ] {
            assert_eq!(CheckpointName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn users_name_checkpoints_short_or_exactly() {
        assert_eq!(
            CheckpointRef::parse("deps").unwrap(),
            CheckpointRef::Short("deps".into())
        );
        let exact = CheckpointRef::parse(&format!("{OTHER}_deps")).unwrap();
        assert_eq!(
            exact,
            CheckpointRef::Exact(CheckpointName::owned(OTHER, "deps"))
        );
        assert_eq!(CheckpointRef::parse(&exact.text()).unwrap(), exact);
        let old = CheckpointRef::parse("cbx-ckpt-deps").unwrap();
        assert_eq!(
            old,
            CheckpointRef::Exact(CheckpointName {
                owner: None,
                short: "deps".into()
            })
        );
        for bad in ["Bad Name", "-x", "x_deps", "", &"a".repeat(49)] {
            let err = CheckpointRef::parse(bad).unwrap_err();
            assert!(
                format!("{err:#}").contains("is not a valid checkpoint name"),
                "{bad}"
            );
        }
        assert!(short_name(&format!("{OTHER}_deps")).is_err());
        assert_eq!(short_name("cbx-ckpt-deps").unwrap(), "deps");
    }
}
