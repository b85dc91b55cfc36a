//! The smallest core guest: a component whose only interface is its own export, built for
//! wasm32-unknown-unknown like cbx's built-in providers.

wit_bindgen::generate!({
    inline: "package cbx:check; world core { export greet: func(name: string) -> string; }",
});

struct Check;

impl Guest for Check {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Check);
