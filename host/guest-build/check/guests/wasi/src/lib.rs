//! The smallest WASI guest: it uses the standard library's environment and clock, so the
//! component imports WASI the way third-party providers' components do.

wit_bindgen::generate!({
    inline: "package cbx:check; world wasi { export describe: func() -> string; }",
});

struct Check;

impl Guest for Check {
    fn describe() -> String {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        format!("{} variables, {since:?}", std::env::vars().count())
    }
}

export!(Check);
