//! What a component imports and exports, read from the component binary itself.

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// One imported or exported item of a component.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Its full name, e.g. `cbx:provider/http@0.1.0`.
    pub name: String,
    /// Functions it contains (empty for types-only interfaces).
    pub functions: Vec<String>,
}

/// The imports and exports of `component`.
pub fn interfaces(
    engine: &wasmtime::Engine,
    component: &Component,
) -> (Vec<Interface>, Vec<Interface>) {
    let ty = component.component_type();
    let describe = |name: &str, item: &ComponentItem| Interface {
        name: name.to_string(),
        functions: match item {
            ComponentItem::ComponentInstance(inst) => inst
                .exports(engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(n, _)| n.to_string())
                .collect(),
            ComponentItem::ComponentFunc(_) => vec![name.to_string()],
            _ => Vec::new(),
        },
    };
    let imports = ty
        .imports(engine)
        .map(|(n, e)| describe(n, &e.ty))
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(n, e)| describe(n, &e.ty))
        .collect();
    (imports, exports)
}
